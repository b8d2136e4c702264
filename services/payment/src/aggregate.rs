//! The payment run aggregate (stream `payment-run-<run id>`): its events ([`RunEvent`]), its
//! fold ([`RunState::apply`], which only folds) and its decisions ([`handle`], pure: no I/O,
//! no clock). Every rule of a run is here:
//!
//! - a run of period P has one order per entitlement with a non-zero amount due in P
//!   ([`amount_due`]) that no run of P has an order of yet; when every such entitlement is in
//!   a run already, the period is [`CommandError::AlreadyInRun`], naming that run; when some are
//!   new since, the new run has only the new ones; when nothing is due at all,
//!   [`CommandError::NothingDue`];
//! - its control totals: count and sum overall, per program and per street-town;
//! - approval: the approver re-keys the control count and total and both must match
//!   ([`CommandError::ControlMismatch`], naming the fields); the officer who created the run
//!   never approves it (four eyes); a run is approved once.

use std::collections::BTreeMap;

use sunshine_domain::Money;
use sunshine_proto::v1 as pb;

use crate::commands::{ApproveRun, Command, CreateRun, PeriodFacts, order_id_for};
use crate::entitlements::amount_due;

sunshine_proto::stream_events! {
    /// The events of `payment-run-<run id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum RunEvent in "payment-run" {
        Created(pb::PaymentRunCreated),
        Approved(pb::PaymentRunApproved),
    }
}

/// A run, folded from its stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunState {
    pub run_id: String,
    pub period: String,
    pub created_by: String,
    pub district_code: String,
    pub orders: Vec<pb::PaymentOrder>,
    pub control: pb::PaymentControlTotals,
    pub approved_by: Option<String>,
    /// The stream's version: the number of events folded.
    pub version: u64,
}

impl RunState {
    /// Folds one event; decides nothing.
    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Created(created) => {
                self.run_id = created.run_id.clone();
                self.period = created.period.clone();
                self.created_by = created.created_by.clone();
                self.district_code = created.district_code.clone();
                self.orders = created.orders.clone();
                self.control = created.control.clone().unwrap_or_default();
            }
            RunEvent::Approved(approved) => {
                self.approved_by = Some(approved.approved_by.clone());
            }
        }
        self.version += 1;
    }

    /// The run folded from `events`, or `None` for none.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a RunEvent>) -> Option<RunState> {
        let mut state: Option<RunState> = None;
        for event in events {
            state.get_or_insert_with(RunState::default).apply(event);
        }
        state
    }

    pub fn status(&self) -> &'static str {
        if self.approved_by.is_some() {
            "approved"
        } else {
            "created"
        }
    }
}

/// Why a command on a run is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("every entitlement due in {period} has its order in run {run_id} already")]
    AlreadyInRun { period: String, run_id: String },
    #[error("nothing is due in {period}: no entitlement pays that month")]
    NothingDue { period: String },
    #[error("run {run_id} exists already")]
    RunExists { run_id: String },
    #[error("no run {run_id}")]
    NoRun { run_id: String },
    #[error("run {run_id} was approved already")]
    AlreadyApproved { run_id: String },
    #[error("the officer who created the run may not approve it (four eyes)")]
    CreatorApproves,
    /// The re-keyed figures that differ from the run's (the run's are not repeated: the
    /// approver keys them from the paper, not from the error).
    #[error("the re-keyed control figures do not match the run's: {}", fields.join(", "))]
    ControlMismatch { fields: Vec<&'static str> },
    #[error("the run's total is out of range")]
    Overflow,
}

/// Decides `command` on the run `state` (`None`: no such stream yet): the events to append, or
/// why not.
pub fn handle(state: Option<&RunState>, command: &Command) -> Result<Vec<RunEvent>, CommandError> {
    match command {
        Command::CreateRun(create, facts) => {
            if let Some(existing) = state {
                return Err(CommandError::RunExists {
                    run_id: existing.run_id.clone(),
                });
            }
            create_run(create, facts).map(|created| vec![RunEvent::Created(created)])
        }
        Command::ApproveRun(approve) => {
            let Some(run) = state else {
                return Err(CommandError::NoRun {
                    run_id: approve.run_id.clone(),
                });
            };
            approve_run(run, approve).map(|approved| vec![RunEvent::Approved(approved)])
        }
    }
}

fn money(amount: Money) -> Option<pb::Money> {
    Some(pb::Money { fen: amount.fen() })
}

fn create_run(
    create: &CreateRun,
    facts: &PeriodFacts,
) -> Result<pb::PaymentRunCreated, CommandError> {
    let period = create.period.to_string();
    let mut orders = Vec::new();
    let mut already_in: Option<&String> = None;
    let mut entitlements: Vec<_> = facts.entitlements.iter().collect();
    entitlements.sort_by(|left, right| left.entitlement_id.cmp(&right.entitlement_id));
    for entitlement in entitlements {
        let amount = amount_due(entitlement, create.period);
        if amount.is_zero() || amount.is_negative() {
            continue;
        }
        if let Some(run_id) = facts.in_runs.get(&entitlement.entitlement_id) {
            already_in = already_in.or(Some(run_id));
            continue;
        }
        orders.push(pb::PaymentOrder {
            order_id: order_id_for(&create.run_id, &entitlement.entitlement_id),
            entitlement_id: entitlement.entitlement_id.clone(),
            case_id: entitlement.case_id.clone(),
            household_id: entitlement.household_id.clone(),
            program_code: entitlement.program_code.clone(),
            street_town_code: entitlement.street_town_code.clone(),
            amount: money(amount),
        });
    }
    if orders.is_empty() {
        return Err(match already_in {
            Some(run_id) => CommandError::AlreadyInRun {
                period,
                run_id: run_id.clone(),
            },
            None => CommandError::NothingDue { period },
        });
    }
    Ok(pb::PaymentRunCreated {
        run_id: create.run_id.clone(),
        period,
        created_by: create.created_by.clone(),
        control: Some(control_totals(&orders)?),
        orders,
        district_code: create.district.as_str().to_owned(),
    })
}

/// Count and sum of `orders`, overall and per program and street-town (in key order).
pub fn control_totals(
    orders: &[pb::PaymentOrder],
) -> Result<pb::PaymentControlTotals, CommandError> {
    fn add(total: &mut (u32, Money), amount: Money) -> Result<(), CommandError> {
        total.0 = total.0.checked_add(1).ok_or(CommandError::Overflow)?;
        total.1 = total.1.checked_add(amount).ok_or(CommandError::Overflow)?;
        Ok(())
    }
    let mut overall = (0_u32, Money::ZERO);
    let mut by_program: BTreeMap<&str, (u32, Money)> = BTreeMap::new();
    let mut by_street_town: BTreeMap<&str, (u32, Money)> = BTreeMap::new();
    for order in orders {
        let amount = Money::from_fen(order.amount.as_ref().map_or(0, |money| money.fen));
        add(&mut overall, amount)?;
        add(by_program.entry(&order.program_code).or_default(), amount)?;
        add(
            by_street_town.entry(&order.street_town_code).or_default(),
            amount,
        )?;
    }
    let listed = |totals: BTreeMap<&str, (u32, Money)>| {
        totals
            .into_iter()
            .map(|(key, (count, total))| pb::PaymentControlTotal {
                key: key.to_owned(),
                count,
                total: money(total),
            })
            .collect()
    };
    Ok(pb::PaymentControlTotals {
        count: overall.0,
        total: money(overall.1),
        by_program: listed(by_program),
        by_street_town: listed(by_street_town),
    })
}

fn approve_run(
    run: &RunState,
    approve: &ApproveRun,
) -> Result<pb::PaymentRunApproved, CommandError> {
    if run.approved_by.is_some() {
        return Err(CommandError::AlreadyApproved {
            run_id: run.run_id.clone(),
        });
    }
    if run.created_by == approve.approved_by {
        return Err(CommandError::CreatorApproves);
    }
    let mut fields = Vec::new();
    if approve.control_count != run.control.count {
        fields.push("control_count");
    }
    let total = run.control.total.as_ref().map_or(0, |money| money.fen);
    if approve.control_total.fen() != total {
        fields.push("control_total");
    }
    if !fields.is_empty() {
        return Err(CommandError::ControlMismatch { fields });
    }
    Ok(pb::PaymentRunApproved {
        run_id: run.run_id.clone(),
        approved_by: approve.approved_by.clone(),
        control_count: approve.control_count,
        control_total: money(approve.control_total),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sunshine_domain::{Month, OrgUnitCode};

    use super::*;
    use crate::entitlements::{Entitlement, Kind};

    // ---- Given / When / Then ----

    struct Given(Vec<RunEvent>);

    fn given(events: Vec<RunEvent>) -> Given {
        Given(events)
    }

    fn nothing() -> Given {
        Given(Vec::new())
    }

    struct When(Result<Vec<RunEvent>, CommandError>);

    impl Given {
        fn when(self, command: Command) -> When {
            let state = RunState::fold(&self.0);
            When(handle(state.as_ref(), &command))
        }
    }

    impl When {
        fn then_expect_events(self, expected: Vec<RunEvent>) {
            assert_eq!(self.0, Ok(expected));
        }

        fn then_expect_error(self, expected: CommandError) {
            assert_eq!(self.0, Err(expected));
        }

        fn events(self) -> Vec<RunEvent> {
            self.0.unwrap()
        }
    }

    // ---- fixtures ----

    const RUN: &str = "0190f3c4-0000-5000-8000-000000000001";

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    fn entitlement(id: &str, program: &str, street: &str, fen: i64) -> Entitlement {
        Entitlement {
            entitlement_id: id.into(),
            case_id: id.into(),
            household_id: format!("household-of-{id}"),
            program_code: program.into(),
            street_town_code: street.into(),
            kind: Kind::Monthly,
            amount: Money::from_fen(fen),
            start_month: month("2026-10"),
            suspended_from: None,
            terminated_from: None,
            adjustments: Vec::new(),
        }
    }

    fn facts(entitlements: Vec<Entitlement>) -> PeriodFacts {
        PeriodFacts {
            entitlements,
            in_runs: BTreeMap::new(),
        }
    }

    fn create(period: &str, facts: PeriodFacts) -> Command {
        Command::CreateRun(
            CreateRun {
                run_id: RUN.into(),
                period: month(period),
                created_by: "officer-1".into(),
                district: OrgUnitCode::parse("990101000000").unwrap(),
            },
            facts,
        )
    }

    fn approve(by: &str, count: u32, fen: i64) -> Command {
        Command::ApproveRun(ApproveRun {
            run_id: RUN.into(),
            expected_version: 1,
            control_count: count,
            control_total: Money::from_fen(fen),
            approved_by: by.into(),
        })
    }

    fn three() -> Vec<Entitlement> {
        vec![
            entitlement("case-b", "dibao", "990101001000", 80_000),
            entitlement("case-a", "dibao", "990101002000", 60_000),
            entitlement("case-c", "tekun", "990101001000", 120_000),
        ]
    }

    fn created_run() -> RunEvent {
        nothing()
            .when(create("2026-10", facts(three())))
            .events()
            .remove(0)
    }

    fn created(event: &RunEvent) -> &pb::PaymentRunCreated {
        match event {
            RunEvent::Created(created) => created,
            RunEvent::Approved(_) => panic!("not a creation"),
        }
    }

    fn total(key: &str, count: u32, fen: i64) -> pb::PaymentControlTotal {
        pb::PaymentControlTotal {
            key: key.into(),
            count,
            total: Some(pb::Money { fen }),
        }
    }

    // ---- CreateRun ----

    #[test]
    fn a_run_has_one_order_per_entitlement_due_and_its_control_totals() {
        let event = created_run();
        let run = created(&event);
        assert_eq!(run.run_id, RUN);
        assert_eq!(run.period, "2026-10");
        assert_eq!(run.created_by, "officer-1");
        assert_eq!(run.district_code, "990101000000");
        let entitlements: Vec<&str> = run
            .orders
            .iter()
            .map(|order| order.entitlement_id.as_str())
            .collect();
        assert_eq!(entitlements, ["case-a", "case-b", "case-c"]);
        assert_eq!(run.orders[1].order_id, order_id_for(RUN, "case-b"));
        assert_eq!(run.orders[1].household_id, "household-of-case-b");
        assert_eq!(run.orders[1].amount, Some(pb::Money { fen: 80_000 }));
        assert_eq!(
            run.control,
            Some(pb::PaymentControlTotals {
                count: 3,
                total: Some(pb::Money { fen: 260_000 }),
                by_program: vec![total("dibao", 2, 140_000), total("tekun", 1, 120_000)],
                by_street_town: vec![
                    total("990101001000", 2, 200_000),
                    total("990101002000", 1, 60_000)
                ],
            })
        );
    }

    #[test]
    fn entitlements_that_pay_nothing_in_the_period_have_no_order() {
        let mut entitlements = three();
        entitlements[0].terminated_from = Some(month("2026-10"));
        entitlements[1].start_month = month("2026-11");
        let event = nothing()
            .when(create("2026-10", facts(entitlements)))
            .events()
            .remove(0);
        let run = created(&event);
        assert_eq!(run.orders.len(), 1);
        assert_eq!(run.orders[0].entitlement_id, "case-c");
        assert_eq!(run.control.as_ref().unwrap().count, 1);
    }

    #[test]
    fn a_period_already_paid_is_refused_naming_the_run() {
        let mut facts = facts(three());
        for entitlement in &facts.entitlements {
            facts
                .in_runs
                .insert(entitlement.entitlement_id.clone(), "run-earlier".into());
        }
        nothing()
            .when(create("2026-10", facts))
            .then_expect_error(CommandError::AlreadyInRun {
                period: "2026-10".into(),
                run_id: "run-earlier".into(),
            });
    }

    #[test]
    fn entitlements_new_since_the_last_run_get_a_run_of_their_own() {
        let mut facts = facts(three());
        facts.in_runs.insert("case-a".into(), "run-earlier".into());
        facts.in_runs.insert("case-b".into(), "run-earlier".into());
        let event = nothing().when(create("2026-10", facts)).events().remove(0);
        let run = created(&event);
        let entitlements: Vec<&str> = run
            .orders
            .iter()
            .map(|order| order.entitlement_id.as_str())
            .collect();
        assert_eq!(entitlements, ["case-c"]);
        assert_eq!(
            run.control.as_ref().unwrap().total,
            Some(pb::Money { fen: 120_000 })
        );
    }

    #[test]
    fn a_month_nothing_pays_in_is_refused() {
        nothing()
            .when(create("2026-09", facts(three())))
            .then_expect_error(CommandError::NothingDue {
                period: "2026-09".into(),
            });
    }

    #[test]
    fn a_run_is_created_once() {
        given(vec![created_run()])
            .when(create("2026-10", facts(three())))
            .then_expect_error(CommandError::RunExists { run_id: RUN.into() });
    }

    // ---- ApproveRun ----

    #[test]
    fn a_second_officer_who_re_keys_the_figures_approves() {
        given(vec![created_run()])
            .when(approve("approver-1", 3, 260_000))
            .then_expect_events(vec![RunEvent::Approved(pb::PaymentRunApproved {
                run_id: RUN.into(),
                approved_by: "approver-1".into(),
                control_count: 3,
                control_total: Some(pb::Money { fen: 260_000 }),
            })]);
    }

    #[test]
    fn the_creator_may_not_approve() {
        given(vec![created_run()])
            .when(approve("officer-1", 3, 260_000))
            .then_expect_error(CommandError::CreatorApproves);
    }

    #[test]
    fn figures_that_do_not_match_are_refused_naming_each() {
        given(vec![created_run()])
            .when(approve("approver-1", 3, 260_001))
            .then_expect_error(CommandError::ControlMismatch {
                fields: vec!["control_total"],
            });
        given(vec![created_run()])
            .when(approve("approver-1", 2, 0))
            .then_expect_error(CommandError::ControlMismatch {
                fields: vec!["control_count", "control_total"],
            });
    }

    #[test]
    fn a_run_is_approved_once() {
        let approved = given(vec![created_run()])
            .when(approve("approver-1", 3, 260_000))
            .events()
            .remove(0);
        given(vec![created_run(), approved])
            .when(approve("approver-2", 3, 260_000))
            .then_expect_error(CommandError::AlreadyApproved { run_id: RUN.into() });
    }

    #[test]
    fn no_run_no_approval() {
        nothing()
            .when(approve("approver-1", 3, 260_000))
            .then_expect_error(CommandError::NoRun { run_id: RUN.into() });
    }

    #[test]
    fn the_fold_counts_versions_and_the_status() {
        let approved = given(vec![created_run()])
            .when(approve("approver-1", 3, 260_000))
            .events()
            .remove(0);
        let events = vec![created_run(), approved];
        let run = RunState::fold(&events).unwrap();
        assert_eq!(run.version, 2);
        assert_eq!(run.status(), "approved");
        assert_eq!(run.approved_by.as_deref(), Some("approver-1"));
        assert_eq!(RunState::fold(&events[..1]).unwrap().status(), "created");
    }
}
