//! Duplicate assistance (重复救助) across departments: two records of one person (the service's
//! person index), of the same program and a kind the policy compares
//! (`integration.duplicate_kinds`), whose periods overlap by at least
//! `integration.duplicate_min_overlap_months`, pushed by two different departments (a
//! department's own overlapping records are its own business, and its own system's check).
//! Each pair is found once: its id is of the pair's two (department, record id)s, so a re-push
//! finds the same id and the store appends nothing new. Pure: no I/O, no keys.
//!
//! Compared with departments' records only: the service hears no payment or review event that
//! says what the district itself pays, so civil affairs' own programs are compared when civil
//! affairs pushes them like any other department (`docs/department-files.md`).

use sunshine_domain::Month;
use sunshine_proto::v1 as pb;

sunshine_proto::stream_events! {
    /// The events of `department-integration-duplicate-<duplicate id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum DuplicateEvent in "department-integration-duplicate" {
        Detected(pb::DuplicateAssistanceDetected),
    }
}

/// The rules as of a day (from the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateRules {
    pub kinds: Vec<String>,
    /// At least 1.
    pub min_overlap_months: u32,
}

impl DuplicateRules {
    pub fn from_policy(parameters: &sunshine_policy::resolved::IntegrationParameters) -> Self {
        DuplicateRules {
            kinds: parameters
                .duplicate_kinds
                .iter()
                .map(|kind| (*kind).to_owned())
                .collect(),
            min_overlap_months: parameters.duplicate_min_overlap_months.max(1),
        }
    }

    /// Whether records of `kind` are compared at all.
    pub fn compares(&self, kind: &str) -> bool {
        self.kinds.iter().any(|compared| compared == kind)
    }
}

/// A record as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub department_code: String,
    pub record_id: String,
    /// Hex of the person index.
    pub person_index: String,
    pub program_code: String,
    pub kind: String,
    pub amount_fen: i64,
    pub period_start: Month,
    pub period_end: Month,
}

/// Months from `start` to `end`, both counted (0 when `end` is before `start`).
pub fn months_between(start: Month, end: Month) -> u32 {
    let months =
        (end.year() - start.year()) * 12 + i32::from(end.month()) - i32::from(start.month()) + 1;
    u32::try_from(months).unwrap_or(0)
}

/// The months both periods cover: (first, last, how many), or `None`.
pub fn overlap(a: &Candidate, b: &Candidate) -> Option<(Month, Month, u32)> {
    let start = a.period_start.max(b.period_start);
    let end = a.period_end.min(b.period_end);
    (start <= end).then(|| (start, end, months_between(start, end)))
}

/// The pair's id: a UUID of its two (department, record id)s, in order.
pub fn duplicate_id(a: &Candidate, b: &Candidate) -> String {
    let (first, second) = ordered(a, b);
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!(
            "department-integration/duplicate\n{}\n{}\n{}\n{}",
            first.department_code, first.record_id, second.department_code, second.record_id
        )
        .as_bytes(),
    )
    .hyphenated()
    .to_string()
}

fn ordered<'a>(a: &'a Candidate, b: &'a Candidate) -> (&'a Candidate, &'a Candidate) {
    if (&a.department_code, &a.record_id) <= (&b.department_code, &b.record_id) {
        (a, b)
    } else {
        (b, a)
    }
}

/// Whether `a` and `b` are a duplicate under `rules`.
pub fn is_duplicate(a: &Candidate, b: &Candidate, rules: &DuplicateRules) -> bool {
    a.department_code != b.department_code
        && a.person_index == b.person_index
        && a.program_code == b.program_code
        && a.kind == b.kind
        && rules.compares(&a.kind)
        && overlap(a, b).is_some_and(|(_, _, months)| months >= rules.min_overlap_months)
}

fn side(candidate: &Candidate) -> pb::DuplicateSide {
    pb::DuplicateSide {
        department_code: candidate.department_code.clone(),
        record_id: candidate.record_id.clone(),
        period_start: candidate.period_start.to_string(),
        period_end: candidate.period_end.to_string(),
        amount: Some(pb::Money {
            fen: candidate.amount_fen,
        }),
    }
}

/// The duplicates between the pushed records `pushed` (of `department`) and `others` (the
/// stored records of the same persons, any department; the pushed ones among them are
/// skipped), each pair once, in duplicate-id order; `known` ids are left out.
pub fn find(
    department: &str,
    pushed: &[Candidate],
    others: &[Candidate],
    rules: &DuplicateRules,
    known: &std::collections::BTreeSet<String>,
) -> Vec<pb::DuplicateAssistanceDetected> {
    let mut found = std::collections::BTreeMap::new();
    for mine in pushed {
        for other in others {
            if !is_duplicate(mine, other, rules) {
                continue;
            }
            let id = duplicate_id(mine, other);
            if known.contains(&id) || found.contains_key(&id) {
                continue;
            }
            let (first, second) = ordered(mine, other);
            let Some((start, end, months)) = overlap(first, second) else {
                continue;
            };
            found.insert(
                id.clone(),
                pb::DuplicateAssistanceDetected {
                    duplicate_id: id,
                    person_index: hex::decode(&mine.person_index).unwrap_or_default(),
                    program_code: mine.program_code.clone(),
                    kind: mine.kind.clone(),
                    first: Some(side(first)),
                    second: Some(side(second)),
                    overlap_start: start.to_string(),
                    overlap_end: end.to_string(),
                    overlap_months: months,
                    detected_on_push_of: department.to_owned(),
                },
            );
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(text: &str) -> Month {
        Month::parse(text).expect("a month")
    }

    fn living_allowance(department: &str, record: &str, start: &str, end: &str) -> Candidate {
        Candidate {
            department_code: department.into(),
            record_id: record.into(),
            person_index: "07".repeat(32),
            program_code: "education_assistance".into(),
            kind: "cash".into(),
            amount_fen: 50_000,
            period_start: month(start),
            period_end: month(end),
        }
    }

    fn rules(min: u32) -> DuplicateRules {
        DuplicateRules {
            kinds: vec!["cash".into(), "subsidy".into()],
            min_overlap_months: min,
        }
    }

    #[test]
    fn two_departments_living_allowances_over_overlapping_months_are_one_duplicate() {
        let education = living_allowance("education", "e-1", "2026-09", "2027-06");
        let charity = living_allowance("charity_federation", "c-1", "2027-01", "2027-12");
        let found = find(
            "education",
            std::slice::from_ref(&education),
            &[charity.clone(), education.clone()],
            &rules(1),
            &Default::default(),
        );
        assert_eq!(found.len(), 1);
        let detected = &found[0];
        assert_eq!(
            (
                detected.overlap_start.as_str(),
                detected.overlap_end.as_str()
            ),
            ("2027-01", "2027-06")
        );
        assert_eq!(detected.overlap_months, 6);
        assert_eq!(
            detected
                .first
                .as_ref()
                .map(|side| side.department_code.as_str()),
            Some("charity_federation")
        );
        assert_eq!(detected.duplicate_id, duplicate_id(&charity, &education));
        assert_eq!(duplicate_id(&education, &charity), detected.duplicate_id);
    }

    #[test]
    fn a_known_pair_is_not_found_again() {
        let education = living_allowance("education", "e-1", "2026-09", "2027-06");
        let charity = living_allowance("charity_federation", "c-1", "2026-09", "2027-06");
        let known = [duplicate_id(&education, &charity)].into_iter().collect();
        assert!(find("education", &[education], &[charity], &rules(1), &known).is_empty());
    }

    #[test]
    fn no_duplicate_without_an_overlap_of_the_same_kind_program_and_person_across_departments() {
        let education = living_allowance("education", "e-1", "2026-09", "2027-06");
        let later = living_allowance("charity_federation", "c-1", "2027-07", "2027-12");
        assert!(!is_duplicate(&education, &later, &rules(1)));
        let mut fee = living_allowance("charity_federation", "c-2", "2026-09", "2027-06");
        fee.kind = "fee_exemption".into();
        assert!(!is_duplicate(&education, &fee, &rules(1)));
        let mut other_program = living_allowance("charity_federation", "c-3", "2026-09", "2027-06");
        other_program.program_code = "temporary_assistance".into();
        assert!(!is_duplicate(&education, &other_program, &rules(1)));
        let mut other_person = living_allowance("charity_federation", "c-4", "2026-09", "2027-06");
        other_person.person_index = "08".repeat(32);
        assert!(!is_duplicate(&education, &other_person, &rules(1)));
        let own = living_allowance("education", "e-2", "2026-09", "2027-06");
        assert!(!is_duplicate(&education, &own, &rules(1)));
    }

    #[test]
    fn a_kind_the_policy_does_not_compare_is_never_a_duplicate() {
        let mut a = living_allowance("education", "e-1", "2026-09", "2027-06");
        let mut b = living_allowance("charity_federation", "c-1", "2026-09", "2027-06");
        a.kind = "service".into();
        b.kind = "service".into();
        assert!(!is_duplicate(&a, &b, &rules(1)));
    }

    #[test]
    fn the_tolerance_lets_a_short_overlap_pass() {
        let education = living_allowance("education", "e-1", "2026-09", "2027-06");
        let handover = living_allowance("charity_federation", "c-1", "2027-06", "2027-12");
        assert!(is_duplicate(&education, &handover, &rules(1)));
        assert!(!is_duplicate(&education, &handover, &rules(2)));
        let whole = living_allowance("charity_federation", "c-2", "2026-09", "2027-06");
        assert!(is_duplicate(&education, &whole, &rules(10)));
        assert!(!is_duplicate(&education, &whole, &rules(11)));
    }

    #[test]
    fn months_are_counted_both_ends_included() {
        assert_eq!(months_between(month("2026-09"), month("2027-06")), 10);
        assert_eq!(months_between(month("2026-09"), month("2026-09")), 1);
        assert_eq!(months_between(month("2026-09"), month("2026-08")), 0);
    }
}
