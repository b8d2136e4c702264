//! Input limits of every review request, checked before anything is read or written: each
//! string and repeated field has a documented bound (`docs/limits.md`, Review), and a refusal
//! is `INVALID_ARGUMENT` naming every bad field at once.
//!
//! Names and codes refuse control characters and the invisible formatting characters that
//! make one text look like another (bidirectional controls, zero-width characters): a subject
//! that renders as someone else's must not reach the log. Free text allows line breaks (`\n`,
//! `\r\n`) and refuses every other control and invisible character. The character rules are
//! the shared ones of `sunshine_domain::validation`, the same in every service.

use sunshine_domain::ValidationErrors;
use sunshine_proto::v1 as pb;

pub const MAX_COMMAND_ID_BYTES: usize = 100;
pub const MAX_SUBJECT_CHARS: usize = 128;
pub const MAX_CODE_CHARS: usize = 64;
pub const MAX_INVESTIGATORS: usize = 10;
pub const MAX_DEPARTMENTS: usize = 20;
pub const MAX_MATERIALS: usize = 20;
pub const MAX_REASONS: usize = 20;
/// Home-visit findings (sealed before they enter the log).
pub const MAX_FINDINGS_CHARS: usize = 4_000;
/// Opinions, justifications and answers to objections.
pub const MAX_STATEMENT_CHARS: usize = 2_000;
/// Reasons (assist-first, return, withdrawal, extension, each reason of a decision).
pub const MAX_REASON_CHARS: usize = 1_000;
pub const MAX_PAGE_SIZE: i32 = 100;
pub const DEFAULT_PAGE_SIZE: i32 = 50;
pub const MAX_PAGE_TOKEN_BYTES: usize = 200;
/// The longest period of receipt one home-visit sample is drawn over (days, both included).
pub const MAX_SAMPLE_PERIOD_DAYS: i64 = 366;
/// The most cases one home-visit sample is drawn over (a larger batch: a shorter period).
pub const MAX_SAMPLE_CASES: usize = 1_000;

/// A name or identifier: required, bounded, no control or invisible formatting characters.
pub fn check_name(errors: &mut ValidationErrors, field: &str, value: &str, max_chars: usize) {
    sunshine_domain::check_text(
        errors,
        field,
        value,
        sunshine_domain::TextRule::required(max_chars),
    );
}

/// Free text: optional unless `required`, bounded, line breaks allowed.
pub fn check_text(
    errors: &mut ValidationErrors,
    field: &str,
    value: &str,
    required: bool,
    max_chars: usize,
) {
    let rule = if required {
        sunshine_domain::TextRule::required(max_chars)
    } else {
        sunshine_domain::TextRule::optional(max_chars)
    };
    sunshine_domain::check_text(errors, field, value, rule.multiline());
}

/// A code (department, material, channel): 1–64 of `a-z`, `0-9`, `_`.
pub fn check_code(errors: &mut ValidationErrors, field: &str, value: &str) {
    if value.is_empty()
        || value.len() > MAX_CODE_CHARS
        || !value
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
    {
        errors.push(
            field,
            format!("a code: 1 to {MAX_CODE_CHARS} of a-z, 0-9 and _"),
        );
    }
}

pub fn check_count<T>(errors: &mut ValidationErrors, field: &str, items: &[T], max: usize) {
    if items.len() > max {
        errors.push(field, format!("at most {max} items"));
    }
}

pub fn check_command_id(errors: &mut ValidationErrors, command_id: &str) {
    if command_id.is_empty()
        || command_id.len() > MAX_COMMAND_ID_BYTES
        || !command_id.bytes().all(|byte| byte.is_ascii_graphic())
    {
        errors.push(
            "command_id",
            "1 to 100 printable ASCII characters, reused on retries",
        );
    }
}

pub fn check_case_id(errors: &mut ValidationErrors, case_id: &str) {
    if case_id.len() != 36 || uuid::Uuid::parse_str(case_id).is_err() {
        errors.push("case_id", "a case id (UUID)");
    }
}

/// Every command's `command_id` and `case_id`.
pub fn command(command_id: &str, case_id: &str) -> ValidationErrors {
    let mut errors = ValidationErrors::default();
    check_command_id(&mut errors, command_id);
    check_case_id(&mut errors, case_id);
    errors
}

pub fn assign_investigators(request: &pb::AssignInvestigatorsRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    check_count(
        &mut errors,
        "investigators",
        &request.investigators,
        MAX_INVESTIGATORS,
    );
    for (index, investigator) in request
        .investigators
        .iter()
        .take(MAX_INVESTIGATORS)
        .enumerate()
    {
        check_name(
            &mut errors,
            &format!("investigators[{index}].subject"),
            &investigator.subject,
            MAX_SUBJECT_CHARS,
        );
        if sunshine_platform::Role::parse(&investigator.role).is_none() {
            errors.push(format!("investigators[{index}].role"), "a role claim value");
        }
        if let Err(error) = sunshine_domain::OrgUnitCode::parse(&investigator.org_unit_code) {
            errors.push(
                format!("investigators[{index}].org_unit_code"),
                error.to_string(),
            );
        }
    }
    errors
}

pub fn record_home_visit(request: &pb::RecordHomeVisitRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    if sunshine_proto::dates::to_date(request.visited_on.as_ref()).is_none() {
        errors.push("visited_on", "a calendar date");
    }
    check_text(
        &mut errors,
        "findings",
        &request.findings,
        false,
        MAX_FINDINGS_CHARS,
    );
    errors
}

fn check_codes(errors: &mut ValidationErrors, field: &str, codes: &[String], max: usize) {
    check_count(errors, field, codes, max);
    for (index, code) in codes.iter().take(max).enumerate() {
        check_code(errors, &format!("{field}[{index}]"), code);
    }
}

pub fn request_verification(request: &pb::RequestVerificationRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    check_codes(
        &mut errors,
        "department_codes",
        &request.department_codes,
        MAX_DEPARTMENTS,
    );
    errors
}

pub fn record_opinion(request: &pb::RecordOpinionRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    check_text(
        &mut errors,
        "opinion",
        &request.opinion,
        false,
        MAX_STATEMENT_CHARS,
    );
    check_text(
        &mut errors,
        "departure_justification",
        &request.departure_justification,
        false,
        MAX_STATEMENT_CHARS,
    );
    errors
}

pub fn start_publicity(request: &pb::StartPublicityRequest) -> ValidationErrors {
    command(&request.command_id, &request.case_id)
}

pub fn answer_objection(request: &pb::AnswerObjectionRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    if request.objection_id.is_empty()
        || request.objection_id.len() > MAX_COMMAND_ID_BYTES
        || !request
            .objection_id
            .bytes()
            .all(|byte| byte.is_ascii_graphic())
    {
        errors.push("objection_id", "1 to 100 printable ASCII characters");
    }
    check_text(
        &mut errors,
        "answer",
        &request.answer,
        true,
        MAX_STATEMENT_CHARS,
    );
    errors
}

pub fn grant_assist_first(request: &pb::GrantAssistFirstRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    check_text(
        &mut errors,
        "reason",
        &request.reason,
        false,
        MAX_REASON_CHARS,
    );
    errors
}

pub fn decide(request: &pb::DecideRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    if request.start_month.len() > 7 {
        errors.push("start_month", "YYYY-MM");
    }
    check_count(&mut errors, "reasons", &request.reasons, MAX_REASONS);
    for (index, reason) in request.reasons.iter().take(MAX_REASONS).enumerate() {
        check_text(
            &mut errors,
            &format!("reasons[{index}]"),
            reason,
            false,
            MAX_REASON_CHARS,
        );
    }
    check_text(
        &mut errors,
        "departure_justification",
        &request.departure_justification,
        false,
        MAX_STATEMENT_CHARS,
    );
    errors
}

pub fn return_for_material(request: &pb::ReturnForMaterialRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    check_codes(
        &mut errors,
        "missing_materials",
        &request.missing_materials,
        MAX_MATERIALS,
    );
    check_text(
        &mut errors,
        "reason",
        &request.reason,
        false,
        MAX_REASON_CHARS,
    );
    errors
}

pub fn withdraw(request: &pb::WithdrawRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    check_text(
        &mut errors,
        "reason",
        &request.reason,
        false,
        MAX_REASON_CHARS,
    );
    errors
}

pub fn extend_deadline(request: &pb::ExtendDeadlineRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    check_text(
        &mut errors,
        "reason",
        &request.reason,
        false,
        MAX_REASON_CHARS,
    );
    errors
}

pub fn notify_refusal(request: &pb::NotifyRefusalRequest) -> ValidationErrors {
    let mut errors = command(&request.command_id, &request.case_id);
    check_code(&mut errors, "channel", &request.channel);
    errors
}

/// A home-visit sample's draw: the command id, an org unit code when given, and a period of
/// receipt of real dates, `received_from` ≤ `received_to`, at most [`MAX_SAMPLE_PERIOD_DAYS`].
pub fn draw_home_visit_sample(request: &pb::DrawHomeVisitSampleRequest) -> ValidationErrors {
    let mut errors = ValidationErrors::default();
    check_command_id(&mut errors, &request.command_id);
    if !request.org_unit_code.is_empty()
        && (request.org_unit_code.len() != 12
            || !request
                .org_unit_code
                .bytes()
                .all(|byte| byte.is_ascii_digit()))
    {
        errors.push("org_unit_code", "empty (your own) or 12 digits");
    }
    let from = sunshine_proto::dates::to_date(request.received_from.as_ref());
    let to = sunshine_proto::dates::to_date(request.received_to.as_ref());
    if from.is_none() {
        errors.push("received_from", "a calendar date");
    }
    if to.is_none() {
        errors.push("received_to", "a calendar date");
    }
    if let (Some(from), Some(to)) = (from, to) {
        let days = (to - from).whole_days() + 1;
        if days < 1 {
            errors.push("received_to", "not before received_from");
        } else if days > MAX_SAMPLE_PERIOD_DAYS {
            errors.push(
                "received_to",
                format!("a period of at most {MAX_SAMPLE_PERIOD_DAYS} days"),
            );
        }
    }
    errors
}

/// A list's page: the size (0 means the default) and the token from a previous response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub size: usize,
    /// The sort key of the last item of the previous page.
    pub after: Option<String>,
}

/// Checks `page` against the limits; `valid_key` says whether a token's key is one this list
/// issues (so a forged or foreign token is refused, not misread).
pub fn page(
    errors: &mut ValidationErrors,
    page: Option<&pb::PageRequest>,
    valid_key: impl Fn(&str) -> bool,
) -> Page {
    let (size, token) = page.map_or((0, ""), |page| (page.page_size, page.page_token.as_str()));
    if !(0..=MAX_PAGE_SIZE).contains(&size) {
        errors.push(
            "page.page_size",
            format!("0 to {MAX_PAGE_SIZE} (0: {DEFAULT_PAGE_SIZE})"),
        );
    }
    let after = if token.is_empty() {
        None
    } else if token.len() > MAX_PAGE_TOKEN_BYTES || !valid_key(token) {
        errors.push(
            "page.page_token",
            "not a token from a previous response of this list",
        );
        None
    } else {
        Some(token.to_owned())
    };
    let size = if size == 0 { DEFAULT_PAGE_SIZE } else { size };
    Page {
        size: usize::try_from(size.clamp(1, MAX_PAGE_SIZE)).unwrap_or(1),
        after,
    }
}

/// Cuts one page out of `items`, sorted by `key`; the next token is the last item's key.
pub fn paginate<T>(
    mut items: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, pb::PageResponse) {
    items.sort_by_key(|item| key(item));
    if let Some(after) = &page.after {
        items.retain(|item| key(item).as_str() > after.as_str());
    }
    let more = items.len() > page.size;
    items.truncate(page.size);
    let next_page_token = if more {
        items.last().map(&key).unwrap_or_default()
    } else {
        String::new()
    };
    (items, pb::PageResponse { next_page_token })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(errors: ValidationErrors) -> Vec<String> {
        errors
            .into_violations()
            .into_iter()
            .map(|violation| violation.field)
            .collect()
    }

    #[test]
    fn three_mebibytes_of_findings_are_refused_naming_the_field() {
        let request = pb::RecordHomeVisitRequest {
            command_id: "visit-1".into(),
            case_id: uuid::Uuid::now_v7().to_string(),
            visited_on: Some(pb::Date {
                year: 2026,
                month: 12,
                day: 1,
            }),
            findings: "家".repeat(1024 * 1024),
            ..Default::default()
        };
        assert_eq!(fields(record_home_visit(&request)), ["findings"]);
    }

    #[test]
    fn a_name_with_a_bidi_override_or_zero_width_space_is_refused() {
        for subject in ["approver\u{202E}1", "clerk\u{200B}-1", "a\u{0007}"] {
            let request = pb::AssignInvestigatorsRequest {
                command_id: "assign-1".into(),
                case_id: uuid::Uuid::now_v7().to_string(),
                investigators: vec![pb::CaseOfficer {
                    subject: subject.into(),
                    role: "village_clerk".into(),
                    org_unit_code: "990101001001".into(),
                }],
                ..Default::default()
            };
            assert_eq!(
                fields(assign_investigators(&request)),
                ["investigators[0].subject"],
                "{subject:?}"
            );
        }
    }

    #[test]
    fn every_repeated_field_is_bounded() {
        let case_id = uuid::Uuid::now_v7().to_string();
        let many = vec!["civil_affairs".to_owned(); MAX_DEPARTMENTS + 1];
        let verification = pb::RequestVerificationRequest {
            command_id: "v".into(),
            case_id: case_id.clone(),
            department_codes: many.clone(),
            ..Default::default()
        };
        assert_eq!(
            fields(request_verification(&verification)),
            ["department_codes"]
        );
        let decision = pb::DecideRequest {
            command_id: "d".into(),
            case_id: case_id.clone(),
            reasons: vec!["x".into(); MAX_REASONS + 1],
            ..Default::default()
        };
        assert_eq!(fields(decide(&decision)), ["reasons"]);
        let returned = pb::ReturnForMaterialRequest {
            command_id: "r".into(),
            case_id,
            missing_materials: many,
            reason: "x".repeat(MAX_REASON_CHARS + 1),
            ..Default::default()
        };
        assert_eq!(
            fields(return_for_material(&returned)),
            ["missing_materials", "reason"]
        );
    }

    #[test]
    fn free_text_keeps_line_breaks_but_not_other_controls() {
        let mut errors = ValidationErrors::default();
        check_text(&mut errors, "opinion", "第一行\r\n第二行\n完", true, 100);
        assert!(errors.is_empty());
        // The shared rule of every service: a tab, a bell or a direction override is refused
        // in free text as in names.
        for refused in ["bell\u{0007}", "tab\there", "甲\u{202E}乙"] {
            let mut errors = ValidationErrors::default();
            check_text(&mut errors, "opinion", refused, true, 100);
            assert_eq!(fields(errors), ["opinion"], "{refused:?}");
        }
    }

    #[test]
    fn a_page_size_of_a_million_or_a_forged_token_is_refused() {
        let mut errors = ValidationErrors::default();
        page(
            &mut errors,
            Some(&pb::PageRequest {
                page_size: 1_000_000,
                page_token: "forged".into(),
            }),
            |_| false,
        );
        assert_eq!(fields(errors), ["page.page_size", "page.page_token"]);
        let mut errors = ValidationErrors::default();
        assert_eq!(
            page(&mut errors, None, |_| true),
            Page {
                size: DEFAULT_PAGE_SIZE as usize,
                after: None
            }
        );
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let items: Vec<u32> = (0..7).rev().collect();
        let key = |item: &u32| format!("{item:03}");
        let mut errors = ValidationErrors::default();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let request = pb::PageRequest {
                page_size: 3,
                page_token: token.clone(),
            };
            let page = page(&mut errors, Some(&request), |_| true);
            let (got, response) = paginate(items.clone(), &page, key);
            seen.extend(got);
            if response.next_page_token.is_empty() {
                break;
            }
            token = response.next_page_token;
        }
        assert!(errors.is_empty());
        assert_eq!(seen, [0, 1, 2, 3, 4, 5, 6]);
    }
}
