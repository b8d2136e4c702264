//! Requests parsed into commands: named fields of checked, typed values (`Month`, `Money`,
//! `OrgUnitCode`), every violation of a request reported at once. The ids a command creates
//! (the run's) are chosen here, from the command id, so that a retry lands on the same stream
//! and the decision stays pure. Payment's commands carry no personal data but the accounts a
//! bank's answer is matched against ([`AccountNumbers`], opened for the decision and never
//! printed): a run names households by id only.

use std::collections::BTreeMap;

use sunshine_domain::{Money, Month, OrgUnitCode, ValidationErrors};
use sunshine_platform::{ApiError, Identity};
use sunshine_proto::v1 as pb;

use crate::bank_files::{AccountNumbers, Format, MAX_RESULT_FILE_BYTES};
use crate::entitlements::Entitlement;
use crate::funds::Funds;
use crate::medical::SubmitMedicalClaim;
use crate::pay_calendar::{CalendarRefusal, PayDate};
use crate::validation::{
    check_amount, check_command_id, check_opaque_id, check_out_of_pocket, check_period,
    check_settlement_date, check_settlement_reference, check_uuid,
};

/// The run a `CreateRun` command id makes: the same id for every retry.
pub fn run_id_for(command_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sunshine/payment/run/{command_id}").as_bytes(),
    )
    .to_string()
}

/// The re-pay run a `CreateRepayRun` command id makes (apart from `CreateRun`'s ids).
pub fn repay_run_id_for(command_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sunshine/payment/repay-run/{command_id}").as_bytes(),
    )
    .to_string()
}

/// The order of `entitlement_id` in run `run_id`.
pub fn order_id_for(run_id: &str, entitlement_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sunshine/payment/order/{run_id}/{entitlement_id}").as_bytes(),
    )
    .to_string()
}

/// `CreateRun`: a run of period `period` in `district`, by `created_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRun {
    pub run_id: String,
    pub period: Month,
    pub created_by: String,
    /// The deployment's district: the run's scope.
    pub district: OrgUnitCode,
}

/// A run creation's two fields checked together (both named at once): its command id, and the
/// period it pays.
fn command_and_period(
    command_id: &str,
    period: &str,
    this_month: Month,
) -> Result<Month, ApiError> {
    let mut errors = ValidationErrors::default();
    check_command_id(&mut errors, command_id);
    let period = check_period(&mut errors, "period", period, this_month);
    errors.into_result()?;
    period.ok_or_else(|| ApiError::invalid_field("period", "required"))
}

impl CreateRun {
    pub fn parse(
        request: &pb::CreateRunRequest,
        caller: &Identity,
        district: &OrgUnitCode,
        this_month: Month,
    ) -> Result<CreateRun, ApiError> {
        let period = command_and_period(&request.command_id, &request.period, this_month)?;
        Ok(CreateRun {
            run_id: run_id_for(&request.command_id),
            period,
            created_by: caller.subject.clone(),
            district: district.clone(),
        })
    }
}

/// What the store knows of a period when a run of it is created: facts not on the run's
/// stream, handed to the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodFacts {
    /// Every entitlement payment has heard of.
    pub entitlements: Vec<Entitlement>,
    /// Entitlement id → the run that already has its order for the period.
    pub in_runs: BTreeMap<String, String>,
    pub budget: BudgetFacts,
    /// The period's pay date by the calendar in force (`crate::pay_calendar`), or why none.
    pub pay_on: Result<PayDate, CalendarRefusal>,
}

/// What a creation checks its run's money against: the funds, and what approved runs of the
/// period's year committed of each fund per budget program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetFacts {
    pub funds: std::sync::Arc<Funds>,
    /// (fund, budget program) → committed.
    pub committed: BTreeMap<(String, String), Money>,
}

/// `ApproveRun`: `approved_by` re-keys the run's control count and total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproveRun {
    pub run_id: String,
    pub expected_version: u64,
    pub control_count: u32,
    pub control_total: Money,
    pub approved_by: String,
}

impl ApproveRun {
    pub fn parse(
        request: &pb::ApproveRunRequest,
        caller: &Identity,
    ) -> Result<ApproveRun, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "run_id", &request.run_id, "a run id");
        let control_total =
            check_amount(&mut errors, "control_total", request.control_total.as_ref());
        errors.into_result()?;
        Ok(ApproveRun {
            run_id: request.run_id.clone(),
            expected_version: request.expected_version,
            control_count: request.control_count,
            control_total: control_total.unwrap_or_default(),
            approved_by: caller.subject.clone(),
        })
    }
}

/// `CreateRepayRun`: a re-pay run of the failed orders of `period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRepayRun {
    pub run_id: String,
    pub period: Month,
    pub created_by: String,
    pub district: OrgUnitCode,
}

impl CreateRepayRun {
    pub fn parse(
        request: &pb::CreateRepayRunRequest,
        caller: &Identity,
        district: &OrgUnitCode,
        this_month: Month,
    ) -> Result<CreateRepayRun, ApiError> {
        let period = command_and_period(&request.command_id, &request.period, this_month)?;
        Ok(CreateRepayRun {
            run_id: repay_run_id_for(&request.command_id),
            period,
            created_by: caller.subject.clone(),
            district: district.clone(),
        })
    }
}

/// An order the bank's result failed, or a returns file returned after the result paid it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedOrder {
    pub order: pb::PaymentOrder,
    pub failure_reason: String,
}

/// What the store knows of a period's failed orders when a re-pay run of it is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepayFacts {
    /// Every order of the period the bank's result failed, in order-id order.
    pub failed: Vec<FailedOrder>,
    /// Failed order id → the re-pay run that pays it again already.
    pub repaid: BTreeMap<String, String>,
    pub budget: BudgetFacts,
}

/// `ExportBankFile`: `exported_by` takes the run's bank batch file in `format`; `batch` is
/// what the export's first pass over the run's orders found (empty when parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportBankFile {
    pub run_id: String,
    pub format: Format,
    pub exported_by: String,
    pub batch: BatchFacts,
}

/// The batch file as the export's first pass wrote it from the run's orders (the
/// `payment_orders` table, in order-id order): its SHA-256, how many orders and their total,
/// how many orders' households have no payment account, and which care institutions paid
/// have no account on the day the pass took their accounts on (in either case the lines
/// are not written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFacts {
    pub sha256: String,
    pub count: u64,
    pub total_fen: i64,
    pub without_account: u64,
    /// The day the care institutions' accounts were taken on (the export's local date).
    pub payees_on: time::Date,
    /// Institution code → why it has no account that day.
    pub unpayable_institutions: BTreeMap<String, String>,
}

impl Default for BatchFacts {
    fn default() -> BatchFacts {
        BatchFacts {
            sha256: String::new(),
            count: 0,
            total_fen: 0,
            without_account: 0,
            payees_on: time::Date::MIN,
            unpayable_institutions: BTreeMap::new(),
        }
    }
}

impl ExportBankFile {
    pub fn parse(
        request: &pb::ExportBankFileRequest,
        caller: &Identity,
    ) -> Result<ExportBankFile, ApiError> {
        let mut errors = ValidationErrors::default();
        check_uuid(&mut errors, "run_id", &request.run_id, "a run id");
        let format = Format::from_proto(request.format);
        if format.is_none() {
            errors.push(
                "format",
                "BANK_FILE_FORMAT_CSV_UTF8 or BANK_FILE_FORMAT_FIXED_GBK",
            );
        }
        errors.into_result()?;
        let format = format.ok_or_else(|| ApiError::invalid_field("format", "required"))?;
        Ok(ExportBankFile {
            run_id: request.run_id.clone(),
            format,
            exported_by: caller.subject.clone(),
            batch: BatchFacts::default(),
        })
    }
}

/// `ImportBankResult`: `recorded_by` records the bank's result file of the run. The file is
/// read in the decision, in the format of the run's last export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportBankResult {
    pub run_id: String,
    pub file: Vec<u8>,
    pub recorded_by: String,
    /// The run's households' account numbers, opened when the file is imported (empty when
    /// parsed): what the file's accounts are matched against.
    pub accounts: AccountNumbers,
}

impl ImportBankResult {
    pub fn parse(
        request: &pb::ImportBankResultRequest,
        caller: &Identity,
    ) -> Result<ImportBankResult, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "run_id", &request.run_id, "a run id");
        if request.file.len() > MAX_RESULT_FILE_BYTES {
            errors.push(
                "file",
                format!("at most {MAX_RESULT_FILE_BYTES} bytes (8 MiB)"),
            );
        }
        errors.into_result()?;
        Ok(ImportBankResult {
            run_id: request.run_id.clone(),
            file: request.file.clone(),
            recorded_by: caller.subject.clone(),
            accounts: AccountNumbers::default(),
        })
    }
}

// ---- settlement: returns (退票) and the reconciliation's close ----

/// `ImportBankReturns`: `recorded_by` records the bank's returns file of the run, read in the
/// decision in the format of the run's last export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportBankReturns {
    pub run_id: String,
    pub file: Vec<u8>,
    pub recorded_by: String,
    /// The run's households' account numbers, opened when the file is imported (empty when
    /// parsed): what the file's accounts are matched against.
    pub accounts: AccountNumbers,
}

impl ImportBankReturns {
    pub fn parse(
        request: &pb::ImportBankReturnsRequest,
        caller: &Identity,
    ) -> Result<ImportBankReturns, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "run_id", &request.run_id, "a run id");
        if request.file.len() > MAX_RESULT_FILE_BYTES {
            errors.push(
                "file",
                format!("at most {MAX_RESULT_FILE_BYTES} bytes (8 MiB)"),
            );
        }
        errors.into_result()?;
        Ok(ImportBankReturns {
            run_id: request.run_id.clone(),
            file: request.file.clone(),
            recorded_by: caller.subject.clone(),
            accounts: AccountNumbers::default(),
        })
    }
}

/// `CloseReconciliation`: `closed_by` re-keys the run's paid and failed-or-returned figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReconciliation {
    pub run_id: String,
    pub expected_version: u64,
    pub paid_count: u32,
    pub paid_total: Money,
    pub unpaid_count: u32,
    pub unpaid_total: Money,
    pub closed_by: String,
}

impl CloseReconciliation {
    pub fn parse(
        request: &pb::CloseReconciliationRequest,
        caller: &Identity,
    ) -> Result<CloseReconciliation, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "run_id", &request.run_id, "a run id");
        let paid_total = check_amount(&mut errors, "paid_total", request.paid_total.as_ref());
        let unpaid_total = check_amount(&mut errors, "unpaid_total", request.unpaid_total.as_ref());
        errors.into_result()?;
        Ok(CloseReconciliation {
            run_id: request.run_id.clone(),
            expected_version: request.expected_version,
            paid_count: request.paid_count,
            paid_total: paid_total.unwrap_or_default(),
            unpaid_count: request.unpaid_count,
            unpaid_total: unpaid_total.unwrap_or_default(),
            closed_by: caller.subject.clone(),
        })
    }
}

/// A command on a run, with the facts its decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateRun(CreateRun, PeriodFacts),
    CreateRepayRun(CreateRepayRun, RepayFacts),
    ApproveRun(ApproveRun),
    ExportBankFile(ExportBankFile),
    ImportBankResult(ImportBankResult),
    // settlement
    ImportBankReturns(ImportBankReturns),
    CloseReconciliation(CloseReconciliation),
}

// ---- Medical assistance claims ----

/// The claim a `SubmitMedicalClaim` command id makes: the same id for every retry.
pub fn claim_id_for(command_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sunshine/payment/medical-claim/{command_id}").as_bytes(),
    )
    .to_string()
}

/// `SubmitMedicalClaim`: every field checked at once; `today` is the caller's local day.
pub fn parse_medical_claim(
    request: &pb::SubmitMedicalClaimRequest,
    caller: &Identity,
    today: time::Date,
) -> Result<SubmitMedicalClaim, ApiError> {
    let mut errors = ValidationErrors::default();
    check_command_id(&mut errors, &request.command_id);
    check_opaque_id(&mut errors, "case_id", &request.case_id);
    check_opaque_id(&mut errors, "patient_member_id", &request.patient_member_id);
    let out_of_pocket =
        check_out_of_pocket(&mut errors, "out_of_pocket", request.out_of_pocket.as_ref());
    let settlement_date = check_settlement_date(
        &mut errors,
        "settlement_date",
        request.settlement_date.as_ref(),
        today,
    );
    check_settlement_reference(
        &mut errors,
        "settlement_reference",
        &request.settlement_reference,
    );
    errors.into_result()?;
    let (Some(out_of_pocket), Some(settlement_date)) = (out_of_pocket, settlement_date) else {
        return Err(ApiError::invalid_field("out_of_pocket", "required"));
    };
    Ok(SubmitMedicalClaim {
        claim_id: claim_id_for(&request.command_id),
        case_id: request.case_id.clone(),
        patient_member_id: request.patient_member_id.clone(),
        out_of_pocket,
        settlement_date,
        settlement_reference: request.settlement_reference.clone(),
        submitted_by: caller.subject.clone(),
    })
}

// ---- Recovery (追缴) ----

/// The recovery claim of a paid order: the same id however often its opening is tried.
pub fn recovery_claim_id_for(order_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sunshine/payment/recovery/{order_id}").as_bytes(),
    )
    .to_string()
}

/// The longest bank reference of a repayment.
pub const MAX_BANK_REFERENCE_CHARS: usize = 64;

/// Why what is outstanding is written off (a code: the log keeps no free text of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOffReason {
    NoEstate,
    Hardship,
    Untraceable,
    Uneconomic,
}

impl WriteOffReason {
    pub fn from_proto(value: i32) -> Option<WriteOffReason> {
        match pb::WriteOffReason::try_from(value).ok()? {
            pb::WriteOffReason::NoEstate => Some(WriteOffReason::NoEstate),
            pb::WriteOffReason::Hardship => Some(WriteOffReason::Hardship),
            pb::WriteOffReason::Untraceable => Some(WriteOffReason::Untraceable),
            pb::WriteOffReason::Uneconomic => Some(WriteOffReason::Uneconomic),
            pb::WriteOffReason::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> pb::WriteOffReason {
        match self {
            WriteOffReason::NoEstate => pb::WriteOffReason::NoEstate,
            WriteOffReason::Hardship => pb::WriteOffReason::Hardship,
            WriteOffReason::Untraceable => pb::WriteOffReason::Untraceable,
            WriteOffReason::Uneconomic => pb::WriteOffReason::Uneconomic,
        }
    }
}

/// `RecordRecoveryRepayment`: `recorded_by` records `amount` received against the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRecoveryRepayment {
    pub claim_id: String,
    pub expected_version: u64,
    pub amount: Money,
    pub bank_reference: String,
    pub recorded_by: String,
}

impl RecordRecoveryRepayment {
    pub fn parse(
        request: &pb::RecordRecoveryRepaymentRequest,
        caller: &Identity,
    ) -> Result<RecordRecoveryRepayment, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "claim_id", &request.claim_id, "a claim id");
        let amount = check_amount(&mut errors, "amount", request.amount.as_ref());
        if amount.is_some_and(Money::is_zero) {
            errors.push("amount", "more than 0 fen");
        }
        let reference = request.bank_reference.as_str();
        let reference_ok = !reference.is_empty()
            && reference.chars().count() <= MAX_BANK_REFERENCE_CHARS
            && reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !reference_ok {
            errors.push(
                "bank_reference",
                format!("1 to {MAX_BANK_REFERENCE_CHARS} characters: letters, digits, '-' and '_'"),
            );
        }
        errors.into_result()?;
        Ok(RecordRecoveryRepayment {
            claim_id: request.claim_id.clone(),
            expected_version: request.expected_version,
            amount: amount.unwrap_or_default(),
            bank_reference: reference.to_owned(),
            recorded_by: caller.subject.clone(),
        })
    }
}

/// `WriteOffRecovery`: `written_off_by` writes off what is outstanding of the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOffRecovery {
    pub claim_id: String,
    pub expected_version: u64,
    pub reason: WriteOffReason,
    pub written_off_by: String,
}

impl WriteOffRecovery {
    pub fn parse(
        request: &pb::WriteOffRecoveryRequest,
        caller: &Identity,
    ) -> Result<WriteOffRecovery, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "claim_id", &request.claim_id, "a claim id");
        let reason = WriteOffReason::from_proto(request.reason);
        if reason.is_none() {
            errors.push(
                "reason",
                "WRITE_OFF_REASON_NO_ESTATE, _HARDSHIP, _UNTRACEABLE or _UNECONOMIC",
            );
        }
        errors.into_result()?;
        let reason = reason.ok_or_else(|| ApiError::invalid_field("reason", "required"))?;
        Ok(WriteOffRecovery {
            claim_id: request.claim_id.clone(),
            expected_version: request.expected_version,
            reason,
            written_off_by: caller.subject.clone(),
        })
    }
}

/// A paid order whose entitlement was terminated: the facts a claim's opening decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidAfterTermination {
    pub order: pb::PaymentOrder,
    /// The order's period.
    pub period: Month,
    /// The termination's effective month, and its cause as review gave it.
    pub terminated_from: Month,
    pub cause: String,
}

/// A command on a recovery claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryCommand {
    RecordRepayment(RecordRecoveryRepayment),
    WriteOff(WriteOffRecovery),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_makes_the_same_run_and_another_command_another() {
        assert_eq!(run_id_for("c1"), run_id_for("c1"));
        assert_ne!(run_id_for("c1"), run_id_for("c2"));
        assert_eq!(run_id_for("c1").len(), 36);
        let run = run_id_for("c1");
        assert_ne!(order_id_for(&run, "e1"), order_id_for(&run, "e2"));
    }
}
