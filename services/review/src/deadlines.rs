//! Deadline watch: statutory limits in working days (from the policy and the holiday
//! calendar, computed on every read) for every open case; a breach is recorded once as
//! `DeadlineBreached` — again only if it was recorded on a provisional date that the calendar,
//! with the year's holiday notice added, now computes differently. Each case's limits are its
//! program's ([`sunshine_policy::ProcedureParameters::for_program`]): 特困 cases have the
//! street-town's and the county's own limits.

use sunshine_domain::{DueDate, OrgUnitCode};
use sunshine_platform::{ApiError, Identity};
use sunshine_policy::{ProcedureRules, ProgramCode};
use sunshine_proto::v1 as pb;

use crate::case::{CaseEvent, CaseState, DeadlineLimits, RecordBreaches, proto_date};
use crate::state::ReviewState;
use crate::store::{self, caller_sees};

pub const MIGRATIONS: &[sunshine_eventlog::schema::Migration] = &[
    sunshine_eventlog::schema::Migration {
        version: 1,
        description: "review: open cases by org unit",
        script: |_kind| {
            "CREATE TABLE review_cases (case_id TEXT PRIMARY KEY, household_id TEXT NOT NULL, hukou_org_unit_code TEXT NOT NULL, status TEXT NOT NULL);
         CREATE INDEX review_cases_scope ON review_cases (hukou_org_unit_code, status);
         CREATE INDEX review_cases_household ON review_cases (household_id);"
            .to_owned()
        },
    },
];

/// Records new breaches of open and running cases under `scope`, as of the clock's today;
/// returns every overdue deadline of the cases `caller` may see. A due date that reached a year
/// without a published holiday notice is provisional, in the breach and in the answer.
pub async fn record_breaches(
    state: &ReviewState,
    scope: &OrgUnitCode,
    caller: &Identity,
) -> Result<Vec<pb::OverdueCase>, ApiError> {
    let today = state.clock.today();
    let mut overdue = Vec::new();
    for case_id in store::cases_in_scope(state, scope.scope_prefix()).await? {
        let loaded = match store::load(state, &case_id).await {
            Ok(loaded) => loaded,
            // Listed a moment before its CaseOpened is appended: not a case yet.
            Err(ApiError::NotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        let Some(limits) = limits_for(state, &loaded.state)? else {
            continue;
        };
        let deadlines = loaded.state.deadlines(&limits);
        let breaches = loaded
            .state
            .handle(
                RecordBreaches {
                    on: today,
                    deadlines: deadlines.clone(),
                }
                .into(),
            )
            .map_err(ApiError::internal)?;
        if !breaches.is_empty() {
            // Named by what it records: a provisional breach recomputed on an exact date is
            // another command (the due date is part of it).
            let dates: Vec<String> = breaches
                .iter()
                .filter_map(|event| match event {
                    CaseEvent::DeadlineBreached(breach) => {
                        Some(format!("{}{}", breach.deadline, date_key(breach.due_on)))
                    }
                    _ => None,
                })
                .collect();
            let command_id = format!("deadlines-{case_id}-{today}-{}", dates.join("-"));
            let metadata =
                store::system_metadata(store::system_actor("review-deadline-watch"), &command_id);
            match store::append(state, &case_id, loaded.version, &metadata, &breaches).await {
                Ok(_) | Err(ApiError::Conflict(_)) => {}
                Err(error) => return Err(error),
            }
        }
        if !scope.covers(&loaded.state.hukou_org_unit) || !caller_sees(caller, &loaded.state) {
            continue;
        }
        for (name, due) in deadlines {
            if today > due.date {
                overdue.push(overdue_entry(&loaded.state, name, due));
            }
        }
    }
    Ok(overdue)
}

/// The working-day limits of a case, from the policy and the holiday calendar, computed on
/// every read: a date that reached a year without a published notice is provisional and
/// becomes exact once the notice is in the calendar. `None` for a case without an acceptance
/// date.
pub fn limits_for(
    state: &ReviewState,
    case: &CaseState,
) -> Result<Option<DeadlineLimits>, ApiError> {
    let Some(accepted_on) = case.accepted_on else {
        return Ok(None);
    };
    // The program's own rules (特困 by 特困人员认定办法, the others by the dibao review's).
    let procedure = state
        .policy
        .resolve(accepted_on)
        .map_err(ApiError::internal)?
        .procedure;
    let program = case
        .program_code
        .parse::<ProgramCode>()
        .map_err(ApiError::internal)?;
    let rules = procedure.for_program(program);
    let review = rules
        .deadlines(&state.calendar, accepted_on)
        .map_err(ApiError::internal)?;
    // The district's clock: for 特困 from its receipt of the opinion (after the notice), for
    // the dibao review from the opinion.
    let received_on = match rules.rules {
        ProcedureRules::ExtremePoverty => case.district_received_on(),
        ProcedureRules::MinimumLivingGuarantee => case.opinion_on,
    };
    let district_decision = match received_on {
        Some(received_on) => Some(
            rules
                .district_decision_due(&state.calendar, received_on)
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let refusal_notice = match case.rejected_on {
        Some(rejected_on) => Some(
            procedure
                .refusal_notice_due(&state.calendar, rejected_on)
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    Ok(Some(DeadlineLimits {
        investigation_start: review.investigation_start_by,
        review: review.review_due_by,
        review_extended: review.review_extended_due_by,
        street_town_review: review.street_town_due_by,
        district_decision,
        refusal_notice,
    }))
}

/// A sampled case at the decision stage, not yet visited, and `caller` holds a role the
/// workflow's `home_visit_sample` names, at its tier: the district's visit is theirs to make.
fn awaits_sample_visit_by(case: &CaseState, caller: &Identity) -> bool {
    case.home_visit_sample
        .as_ref()
        .is_some_and(|membership| membership.sampled)
        && !case.home_visit_sample_visited
        && case.current_stage() == Some(crate::workflow::StageKind::Decision)
        && case.workflow.home_visit_sample().is_some_and(|rule| {
            rule.roles.iter().any(|role| role == caller.role.as_str())
                && rule.tier
                    == crate::case::Officer {
                        subject: caller.subject.clone(),
                        role: caller.role.as_str().to_owned(),
                        org_unit: caller.org_unit.clone(),
                    }
                    .tier()
        })
}

fn overdue_entry(case: &CaseState, deadline: &str, due: DueDate) -> pb::OverdueCase {
    pb::OverdueCase {
        case_id: case.case_id.clone(),
        deadline: deadline.to_owned(),
        due_on: Some(proto_date(due.date)),
        stage: case
            .current_stage()
            .map(|stage| stage.as_str().to_owned())
            .unwrap_or_default(),
        provisional: due.provisional,
    }
}

fn date_key(date: Option<pb::Date>) -> String {
    date.map_or_else(
        || "99999999".to_owned(),
        |date| format!("{:04}{:02}{:02}", date.year, date.month, date.day),
    )
}

/// Whether `key` has the shape of `date|case id`, or `date|case id|deadline` when `deadline`.
fn is_key(key: &str, deadline: bool) -> bool {
    let parts: Vec<&str> = key.split('|').collect();
    let shape = if deadline { 3 } else { 2 };
    parts.len() == shape
        && parts[0].len() == 8
        && parts[0].bytes().all(|byte| byte.is_ascii_digit())
        && parts[1].len() == 36
        && uuid::Uuid::parse_str(parts[1]).is_ok()
        && (!deadline
            || (!parts[2].is_empty()
                && parts[2].len() <= 32
                && parts[2]
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte == b'_')))
}

/// The work queue's order (nearest deadline first, then case id) and page token.
pub fn work_queue_key(item: &pb::WorkItem) -> String {
    format!("{}|{}", date_key(item.due_on), item.case_id)
}

pub fn is_work_queue_key(key: &str) -> bool {
    is_key(key, false)
}

/// The overdue list's order (oldest due date first) and page token.
pub fn overdue_key(entry: &pb::OverdueCase) -> String {
    format!(
        "{}|{}|{}",
        date_key(entry.due_on),
        entry.case_id,
        entry.deadline
    )
}

pub fn is_overdue_key(key: &str) -> bool {
    is_key(key, true)
}

/// Open cases under `scope` that `caller` may see, with their nearest deadline; what the
/// caller must do is marked. Unsorted: the caller pages them by [`work_queue_key`].
pub async fn work_queue(
    state: &ReviewState,
    scope: &OrgUnitCode,
    caller: &Identity,
) -> Result<Vec<pb::WorkItem>, ApiError> {
    let mut items = Vec::new();
    for case_id in store::cases_in_scope(state, scope.scope_prefix()).await? {
        let loaded = match store::load(state, &case_id).await {
            Ok(loaded) => loaded,
            // Listed a moment before its CaseOpened is appended: not a case yet.
            Err(ApiError::NotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        let case = &loaded.state;
        // The list is advisory: the case itself says where it is and who may see it.
        if !scope.covers(&case.hukou_org_unit) || !caller_sees(caller, case) {
            continue;
        }
        let next = match limits_for(state, case)? {
            Some(limits) => case
                .deadlines(&limits)
                .into_iter()
                .min_by_key(|(_, due)| due.date),
            None => None,
        };
        let visited = case
            .visits
            .iter()
            .any(|visit| visit.subject == caller.subject);
        items.push(pb::WorkItem {
            case_id: case.case_id.clone(),
            program_code: case.program_code.clone(),
            stage: case
                .current_stage()
                .map(|stage| stage.as_str().to_owned())
                .unwrap_or_default(),
            next_deadline: next.map(|(name, _)| name.to_owned()).unwrap_or_default(),
            due_on: next.map(|(_, due)| proto_date(due.date)),
            assigned_to_caller: (case
                .investigators
                .iter()
                .any(|investigator| investigator == &caller.subject)
                && !visited)
                || awaits_sample_visit_by(case, caller),
            status: format!("{:?}", case.status).to_lowercase(),
            provisional: next.is_some_and(|(_, due)| due.provisional),
        });
    }
    Ok(items)
}
