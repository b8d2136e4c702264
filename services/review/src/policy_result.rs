//! The policy engine's result on the wire: `PolicyResult`, attached to opinions, decisions,
//! departures and reassessments, with the period and the program's benefit kind as enums.
//!
//! Results stored before the enums carry the period as text only — `"monthly"`, `"annual"`,
//! and `"oneoff"` (review wrote the Debug name; the policy crate says `"one_off"`).
//! [`upcast`] reads either spelling into the enum when a case event is decoded, so no reader
//! of review's events ever parses the text.

use sunshine_policy::{BenefitKind, BenefitPeriod, Decision, Language, Program};
use sunshine_proto::v1 as pb;

pub fn benefit_period(period: BenefitPeriod) -> pb::BenefitPeriod {
    match period {
        BenefitPeriod::Monthly => pb::BenefitPeriod::Monthly,
        BenefitPeriod::OneOff => pb::BenefitPeriod::OneOff,
        BenefitPeriod::Annual => pb::BenefitPeriod::Annual,
    }
}

pub fn benefit_kind(kind: BenefitKind) -> pb::BenefitKind {
    match kind {
        BenefitKind::MonthlyCash => pb::BenefitKind::MonthlyCash,
        BenefitKind::OneOffCash => pb::BenefitKind::OneOffCash,
        BenefitKind::AnnualCash => pb::BenefitKind::AnnualCash,
        BenefitKind::Service => pb::BenefitKind::Service,
        BenefitKind::FeeExemption => pb::BenefitKind::FeeExemption,
        BenefitKind::PremiumSubsidy => pb::BenefitKind::PremiumSubsidy,
        BenefitKind::InsuranceEnrolment => pb::BenefitKind::InsuranceEnrolment,
        BenefitKind::Housing => pb::BenefitKind::Housing,
    }
}

/// The result attached to an opinion or decision on `program`; the program's Chinese name
/// heads the explanation.
pub fn from_decision(decision: &Decision, program: &Program) -> pb::PolicyResult {
    pb::PolicyResult {
        eligible: decision.eligible,
        amount: Some(pb::Money {
            fen: decision.amount.fen(),
        }),
        period: String::new(),
        hardship_basis_points: decision
            .hardship
            .as_ref()
            .map_or(0, |hardship| hardship.basis_points),
        policy_version: decision.policy_version.to_string(),
        reasons: decision
            .explain(Language::Zh, &program.name_zh)
            .lines()
            .map(str::to_owned)
            .collect(),
        benefit_period: benefit_period(decision.period) as i32,
        benefit_kind: benefit_kind(program.benefit_kind) as i32,
    }
}

/// The period a stored text names, in every spelling review ever wrote or the policy uses.
pub fn period_from_text(text: &str) -> pb::BenefitPeriod {
    match text {
        "monthly" => pb::BenefitPeriod::Monthly,
        "one_off" | "oneoff" => pb::BenefitPeriod::OneOff,
        "annual" => pb::BenefitPeriod::Annual,
        _ => pb::BenefitPeriod::Unspecified,
    }
}

/// Fills `benefit_period` of a result stored before it existed, from its text; a result that
/// has the enum is left as it is.
pub fn upcast(result: &mut pb::PolicyResult) {
    if result.benefit_period == pb::BenefitPeriod::Unspecified as i32 && !result.period.is_empty() {
        result.benefit_period = period_from_text(&result.period) as i32;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sunshine_policy::{Policy, ProgramCode};

    use super::*;

    #[test]
    fn every_policy_period_has_its_enum_and_its_text_reads_back() {
        for period in [
            BenefitPeriod::Monthly,
            BenefitPeriod::OneOff,
            BenefitPeriod::Annual,
        ] {
            // The policy's own text (what payment reads in the policy files) …
            assert_eq!(period_from_text(period.as_str()), benefit_period(period));
            // … and what review wrote before: the Debug name, lowercased.
            let written_before = format!("{period:?}").to_lowercase();
            assert_eq!(period_from_text(&written_before), benefit_period(period));
        }
        assert_eq!(period_from_text("weekly"), pb::BenefitPeriod::Unspecified);
        let mut unknown = pb::PolicyResult {
            period: "weekly".into(),
            ..Default::default()
        };
        upcast(&mut unknown);
        assert_eq!(unknown.benefit_period(), pb::BenefitPeriod::Unspecified);
    }

    #[test]
    fn a_one_off_program_is_written_as_one_off_with_its_kind() {
        let policy = Policy::example_district().unwrap();
        for code in ProgramCode::ALL.iter().copied() {
            let program = policy.catalogue().program(code);
            let decision = Decision {
                program: code,
                as_of: time::macros::date!(2026 - 9 - 1),
                eligible: true,
                amount: sunshine_domain::Money::from_fen(100),
                period: code.period(),
                reasons: Vec::new(),
                hardship: None,
                assist_first_amount: None,
                medical_routes: Vec::new(),
                policy_version: policy.version(),
            };
            let result = from_decision(&decision, program);
            assert_eq!(result.benefit_period(), benefit_period(code.period()));
            assert_eq!(result.benefit_kind(), benefit_kind(program.benefit_kind));
            assert!(result.period.is_empty(), "the text is no longer written");
        }
        let temporary = policy.catalogue().program(ProgramCode::Temporary);
        assert_eq!(
            benefit_kind(temporary.benefit_kind),
            pb::BenefitKind::OneOffCash
        );
        assert_eq!(
            benefit_period(ProgramCode::Temporary.period()),
            pb::BenefitPeriod::OneOff
        );
    }
}
