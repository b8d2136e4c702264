//! Each review command request parsed into the aggregate's command, before anything is read:
//! every limit of [`crate::limits`] checked and every field typed (officers, dates, money,
//! months), all violations reported at once (`INVALID_ARGUMENT` naming each field). What the
//! service knows rather than the caller — today, the acting officer, the policy's publicity
//! days and assist-first cap, the re-review dates — is passed in.

use sunshine_domain::{CreditCode, Money, Month, OrgUnitCode, ValidationErrors};
use sunshine_proto::v1 as pb;
use time::Date;

use crate::case::{
    AnswerObjection, AssignInvestigators, Decide, ExtendDeadline, GrantAssistFirst, NotifyRefusal,
    Officer, ReReviewDue, RecordHomeVisit, RecordOpinion, RequestVerification, ReturnForMaterial,
    StartPublicity, Verdict, Withdraw,
};
use crate::limits;

/// What every case command request carries besides its own fields: the command id retries
/// reuse, the case, and the version the officer saw.
pub trait CaseCommandRequest: prost::Message {
    fn command_id(&self) -> &str;
    fn case_id(&self) -> &str;
    fn expected_version(&self) -> u64;
}

macro_rules! case_command_requests {
    ($($request:ty),+ $(,)?) => {
        $(
            impl CaseCommandRequest for $request {
                fn command_id(&self) -> &str {
                    &self.command_id
                }
                fn case_id(&self) -> &str {
                    &self.case_id
                }
                fn expected_version(&self) -> u64 {
                    self.expected_version
                }
            }
        )+
    };
}

case_command_requests!(
    pb::AssignInvestigatorsRequest,
    pb::RecordHomeVisitRequest,
    pb::RequestVerificationRequest,
    pb::RecordOpinionRequest,
    pb::StartPublicityRequest,
    pb::AnswerObjectionRequest,
    pb::GrantAssistFirstRequest,
    pb::DecideRequest,
    pb::ReturnForMaterialRequest,
    pb::WithdrawRequest,
    pb::ExtendDeadlineRequest,
    pb::NotifyRefusalRequest,
);

fn money(value: Option<pb::Money>) -> Money {
    Money::from_fen(value.map_or(0, |money| money.fen))
}

pub fn assign_investigators(
    request: &pb::AssignInvestigatorsRequest,
    by: &Officer,
) -> Result<AssignInvestigators, ValidationErrors> {
    limits::assign_investigators(request).into_result()?;
    let mut investigators = Vec::new();
    for investigator in &request.investigators {
        // The limits checked every code.
        if let Ok(org_unit) = OrgUnitCode::parse(&investigator.org_unit_code) {
            investigators.push(Officer {
                subject: investigator.subject.clone(),
                role: investigator.role.clone(),
                org_unit,
            });
        }
    }
    Ok(AssignInvestigators {
        by: by.clone(),
        investigators,
    })
}

/// A visit on a calendar date that is not after `today`. The findings are not in the command:
/// the handler seals them once the visit is allowed.
pub fn record_home_visit(
    request: &pb::RecordHomeVisitRequest,
    by: &Officer,
    today: Date,
) -> Result<RecordHomeVisit, ValidationErrors> {
    let mut errors = limits::record_home_visit(request);
    let visited_on = sunshine_proto::dates::to_date(request.visited_on.as_ref());
    if let Some(visited_on) = visited_on
        && visited_on > today
    {
        errors.push("visited_on", "must not be in the future");
    }
    errors.into_result()?;
    Ok(RecordHomeVisit {
        by: by.clone(),
        // The limits refused a missing or impossible date.
        visited_on: visited_on.unwrap_or(today),
    })
}

pub fn request_verification(
    request: &pb::RequestVerificationRequest,
    by: &Officer,
) -> Result<RequestVerification, ValidationErrors> {
    limits::request_verification(request).into_result()?;
    Ok(RequestVerification {
        by: by.clone(),
        department_codes: request.department_codes.clone(),
    })
}

pub fn record_opinion(
    request: &pb::RecordOpinionRequest,
    by: &Officer,
    today: Date,
) -> Result<RecordOpinion, ValidationErrors> {
    limits::record_opinion(request).into_result()?;
    Ok(RecordOpinion {
        by: by.clone(),
        on: today,
        recommend_approval: request.recommend_approval,
        proposed_amount: request
            .proposed_amount
            .map(|amount| Money::from_fen(amount.fen)),
        opinion: request.opinion.clone(),
        departure_justification: request.departure_justification.clone(),
    })
}

/// The notice starts `today` and runs to `last_day` (the policy's publicity days).
pub fn start_publicity(
    request: &pb::StartPublicityRequest,
    by: &Officer,
    today: Date,
    last_day: Date,
) -> Result<StartPublicity, ValidationErrors> {
    limits::start_publicity(request).into_result()?;
    Ok(StartPublicity {
        by: by.clone(),
        first_day: today,
        last_day,
    })
}

pub fn answer_objection(
    request: &pb::AnswerObjectionRequest,
    by: &Officer,
) -> Result<AnswerObjection, ValidationErrors> {
    limits::answer_objection(request).into_result()?;
    Ok(AnswerObjection {
        by: by.clone(),
        objection_id: request.objection_id.clone(),
        upheld: request.upheld,
        answer: request.answer.clone(),
    })
}

/// Assist-first under the policy's `cap` as of today.
pub fn grant_assist_first(
    request: &pb::GrantAssistFirstRequest,
    by: &Officer,
    cap: Money,
) -> Result<GrantAssistFirst, ValidationErrors> {
    limits::grant_assist_first(request).into_result()?;
    Ok(GrantAssistFirst {
        by: by.clone(),
        amount: money(request.amount),
        cap,
        reason: request.reason.clone(),
    })
}

/// An approval names the month the benefit starts (`YYYY-MM`); a rejection needs none.
pub fn decide(
    request: &pb::DecideRequest,
    by: &Officer,
    today: Date,
    re_review: ReReviewDue,
) -> Result<Decide, ValidationErrors> {
    let mut errors = limits::decide(request);
    let verdict = if request.approve {
        match Month::parse(&request.start_month) {
            Ok(start_month) => Some(Verdict::Approve { start_month }),
            Err(_) => {
                // A start month too long for the limits is named once.
                if errors
                    .violations()
                    .iter()
                    .all(|violation| violation.field != "start_month")
                {
                    errors.push("start_month", "YYYY-MM");
                }
                None
            }
        }
    } else {
        Some(Verdict::Reject)
    };
    let care_institution = care_institution(&request.care_institution_code, &mut errors);
    errors.into_result()?;
    Ok(Decide {
        by: by.clone(),
        on: today,
        verdict: verdict.unwrap_or(Verdict::Reject),
        monthly_amount: money(request.monthly_amount),
        reasons: request.reasons.clone(),
        departure_justification: request.departure_justification.clone(),
        re_review,
        care_institution,
    })
}

/// The decision's care institution (集中供养): none when empty, else a unified social credit
/// code (whether the case's program may name one is the aggregate's rule).
fn care_institution(code: &str, errors: &mut ValidationErrors) -> Option<CreditCode> {
    if code.is_empty() {
        return None;
    }
    match CreditCode::parse(code) {
        Ok(code) => Some(code),
        Err(error) => {
            errors.push("care_institution_code", error.to_string());
            None
        }
    }
}

pub fn return_for_material(
    request: &pb::ReturnForMaterialRequest,
    by: &Officer,
) -> Result<ReturnForMaterial, ValidationErrors> {
    limits::return_for_material(request).into_result()?;
    Ok(ReturnForMaterial {
        by: by.clone(),
        missing_materials: request.missing_materials.clone(),
        reason: request.reason.clone(),
    })
}

pub fn withdraw(request: &pb::WithdrawRequest, by: &Officer) -> Result<Withdraw, ValidationErrors> {
    limits::withdraw(request).into_result()?;
    Ok(Withdraw {
        by: by.clone(),
        reason: request.reason.clone(),
    })
}

pub fn extend_deadline(
    request: &pb::ExtendDeadlineRequest,
    by: &Officer,
) -> Result<ExtendDeadline, ValidationErrors> {
    limits::extend_deadline(request).into_result()?;
    Ok(ExtendDeadline {
        by: by.clone(),
        reason: request.reason.clone(),
    })
}

pub fn notify_refusal(
    request: &pb::NotifyRefusalRequest,
    by: &Officer,
    today: Date,
) -> Result<NotifyRefusal, ValidationErrors> {
    limits::notify_refusal(request).into_result()?;
    Ok(NotifyRefusal {
        by: by.clone(),
        on: today,
        channel: request.channel.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::date;

    use super::*;

    fn approver() -> Officer {
        Officer {
            subject: "approver".into(),
            role: "center_approver".into(),
            org_unit: OrgUnitCode::parse("990101000000").unwrap(),
        }
    }

    fn fields(errors: ValidationErrors) -> Vec<String> {
        errors
            .into_violations()
            .into_iter()
            .map(|violation| violation.field)
            .collect()
    }

    const RE_REVIEW: ReReviewDue = ReReviewDue {
        variable_income: date!(2027 - 4 - 5),
        stable_income: date!(2027 - 10 - 5),
    };

    #[test]
    fn an_approval_without_a_month_is_refused_with_every_other_violation() {
        let request = pb::DecideRequest {
            command_id: String::new(),
            case_id: uuid::Uuid::now_v7().to_string(),
            approve: true,
            start_month: "2026-13".into(),
            ..Default::default()
        };
        let refused = decide(&request, &approver(), date!(2026 - 10 - 5), RE_REVIEW).unwrap_err();
        assert_eq!(fields(refused), ["command_id", "start_month"]);
        // Too long for the limits: named once.
        let long = pb::DecideRequest {
            start_month: "2026-11-01".into(),
            ..request.clone()
        };
        let refused = decide(&long, &approver(), date!(2026 - 10 - 5), RE_REVIEW).unwrap_err();
        assert_eq!(fields(refused), ["command_id", "start_month"]);
        // A rejection names no month.
        let rejection = pb::DecideRequest {
            command_id: "decide-1".into(),
            approve: false,
            start_month: String::new(),
            reasons: vec!["收入超过标准".into()],
            ..request
        };
        let command = decide(&rejection, &approver(), date!(2026 - 10 - 5), RE_REVIEW).unwrap();
        assert_eq!(command.verdict, Verdict::Reject);
        assert_eq!(command.care_institution, None);
    }

    #[test]
    fn a_care_institution_is_a_unified_social_credit_code() {
        let institution = CreditCode::with_check_character("12990100MB0000001").unwrap();
        let request = pb::DecideRequest {
            command_id: "decide-1".into(),
            case_id: uuid::Uuid::now_v7().to_string(),
            approve: true,
            start_month: "2026-11".into(),
            care_institution_code: institution.as_str().to_ascii_lowercase(),
            ..Default::default()
        };
        let command = decide(&request, &approver(), date!(2026 - 10 - 5), RE_REVIEW).unwrap();
        assert_eq!(command.care_institution, Some(institution.clone()));
        let wrong_check = format!("{}0", &institution.as_str()[..17]);
        for bad in [
            wrong_check.as_str(),
            "12990100MB000000\u{7}X",
            "敬老院",
            &"1".repeat(100_000),
        ] {
            let request = pb::DecideRequest {
                care_institution_code: bad.to_owned(),
                ..request.clone()
            };
            let refused = decide(&request, &approver(), date!(2026 - 10 - 5), RE_REVIEW);
            let refused = refused.unwrap_err();
            assert_eq!(fields(refused.clone()), ["care_institution_code"]);
            // The refusal names the field, never repeats the input.
            assert!(
                refused
                    .violations()
                    .iter()
                    .all(|violation| !violation.description.contains(&bad[..bad.len().min(18)])),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_visit_in_the_future_is_refused_at_the_edge() {
        let clerk = Officer {
            subject: "clerk".into(),
            role: "village_clerk".into(),
            org_unit: OrgUnitCode::parse("990101001001").unwrap(),
        };
        let request = pb::RecordHomeVisitRequest {
            command_id: "visit-1".into(),
            case_id: uuid::Uuid::now_v7().to_string(),
            visited_on: Some(sunshine_proto::dates::from_date(date!(2026 - 9 - 2))),
            ..Default::default()
        };
        let refused = record_home_visit(&request, &clerk, date!(2026 - 9 - 1)).unwrap_err();
        assert_eq!(fields(refused), ["visited_on"]);
        let command = record_home_visit(&request, &clerk, date!(2026 - 9 - 2)).unwrap();
        assert_eq!(command.visited_on, date!(2026 - 9 - 2));
    }
}
