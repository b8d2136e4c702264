//! `sunshine.v1.PaymentService`. Every RPC has the same shape, in this order:
//!
//! 1. **identity**: the verified caller and its role (`PERMISSION_DENIED` for a role the RPC
//!    never serves);
//! 2. **parse**: the request into a command ([`crate::commands`]), every bad field at once;
//!    nothing is read or written before; a request that names the district (`CreateRun`
//!    makes a run of the deployment's district) is refused outside the caller's scope with
//!    `PERMISSION_DENIED`;
//! 3. **load** ([`PaymentStore`]): a retry is answered from its first append; the run **in
//!    the caller's scope** (outside the district it reads exactly like a run that does not
//!    exist), at the version the caller saw; for a creation, the period's facts;
//! 4. **decide** ([`aggregate::handle`]): pure, the events or why not;
//! 5. **append** ([`PaymentStore`]): with the expected version and the request's digest; a
//!    new run's claims on its orders commit in the append's transaction;
//! 6. **answer** from the run as the append left it (the first append, for a retry).
//!
//! `SubmitMedicalClaim` takes the same steps on the claim's stream (load: the retry, the case
//! in scope, the household's entitlements, the patient's earlier claims, the policy as of the
//! settlement date). Reads take steps 1–3 and answer; the ledger's (`GetTrialBalance`, `GetFundBalances`) read
//! the district's ledger table, in the caller's scope. The queries (`ListHouseholdPayments`, `ListRuns`, `GetMonthlyReport`) read payment's tables through [`read_model`]; `ExportRunForInspection` is a read that is recorded on its own stream (`payment-inspection-<run id>`, [`crate::inspection`]). `ExportBankFile` is a read that is recorded, and streamed
//! ([`crate::bank_export`]): the run without its orders, a first pass over its orders'
//! table that digests the file (each household's account opened for it), the decision on
//! those facts, the export appended (no command id: each export taken is recorded) at the
//! version it read, then the file sent in parts by a second pass, each part checked against
//! the first's. `ImportBankResult` and `ImportBankReturns` open the run's households' accounts
//! again to match the bank's lines against. Errors become statuses through `ApiError` only
//! ([`crate::errors`]).

use std::sync::{Arc, OnceLock};

use sunshine_domain::{Month, OrgUnitCode, ValidationErrors, WorkingDayCalendar};
use sunshine_eventlog::{AppendOutcome, EventMetadata, request_digest};
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_policy::Policy;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::payment_service_server::PaymentService;

use crate::aggregate::{self, RunEvent, RunState};
use crate::cash;
use crate::commands;
use crate::commands::{
    ApproveRun, CloseReconciliation, Command, CreateRepayRun, CreateRun, ExportBankFile,
    ImportBankResult, ImportBankReturns, RecordRecoveryRepayment, RecoveryCommand,
    WriteOffRecovery,
};
use crate::funds::Funds;
use crate::medical::{self, ClaimFacts, ClaimState};
use crate::read_model;
use crate::recovery;
use crate::store::{Fold, Loaded, LoadedClaim, PaymentStore, command_metadata, export_metadata};
use crate::validation::{
    check_opaque_id, check_page, check_query_period, check_run_status, check_uuid,
};

/// Who prepares payment runs: the district's finance officers.
const RUN_CREATORS: &[Role] = &[Role::FinanceOfficer];
/// Who approves them: the district's finance approvers (never the run's creator).
const RUN_APPROVERS: &[Role] = &[Role::FinanceApprover];
/// Who takes a run's bank file: the district's finance officers and approvers.
const FILE_EXPORTERS: &[Role] = &[Role::FinanceOfficer, Role::FinanceApprover];
/// Who records the bank's result: the district's finance officers.
const RESULT_IMPORTERS: &[Role] = &[Role::FinanceOfficer];
/// Who reads runs: finance, and the auditors (纪委).
const RUN_READERS: &[Role] = &[Role::FinanceOfficer, Role::FinanceApprover, Role::Auditor];

/// Who records the bank's returns (退票): the district's finance officers.
const RETURNS_IMPORTERS: &[Role] = &[Role::FinanceOfficer];
/// Who closes a run's reconciliation: the district's finance approvers (never the run's
/// creator, nor who recorded its result or returns).
const RECONCILIATION_CLOSERS: &[Role] = &[Role::FinanceApprover];

/// Who reads the ledger: finance, and the auditors (纪委).
const LEDGER_READERS: &[Role] = &[Role::FinanceOfficer, Role::FinanceApprover, Role::Auditor];

/// What the handlers share once the service is connected.
#[derive(Debug, Clone)]
pub struct PaymentState {
    pub store: PaymentStore,
    pub clock: Arc<dyn sunshine_platform::clock::Clock>,
    /// The deployment's district: every run is its, and its officers' scope.
    pub district: OrgUnitCode,
    /// Which fund pays which program, and the funds' yearly budgets (`payment.funds_file`).
    pub funds: Arc<Funds>,
    /// The working-day calendar (the domain's, as review's deadlines): runs' pay dates.
    pub working_days: Arc<WorkingDayCalendar>,
    /// The district's policy (`policy.directory`): medical claims' parameters.
    pub policy: Arc<Policy>,
    /// The 纪委 export's key (`payment.inspection_key_file`); `None`: not configured.
    pub inspection_key: Option<Arc<crate::inspection::InspectionKey>>,
    /// The largest part of a bank file one message of `ExportBankFile`'s stream carries
    /// (`payment.bank_file_chunk_bytes`, or 1 MiB).
    pub bank_file_part_bytes: usize,
}

impl PaymentState {
    fn this_month(&self) -> Month {
        Month::of(self.clock.today())
    }

    /// The accounts the run's orders paid, as the bank's answers are matched against them:
    /// the households' opened again, the care institutions' in force on the day the last
    /// export took them on (today, for a run exported before institutions were paid).
    async fn payee_accounts(
        &self,
        run: &RunState,
    ) -> Result<crate::bank_files::AccountNumbers, ApiError> {
        let on = run
            .last_export_payees_on
            .unwrap_or_else(|| self.clock.today());
        self.store
            .run_account_numbers(run, self.funds.institutions(), on)
            .await
    }
}

/// The gRPC service; answers `UNAVAILABLE` until the log is ready.
#[derive(Debug, Clone)]
pub struct PaymentApi {
    pub state: Arc<OnceLock<PaymentState>>,
}

/// The run as a caller sees it.
/// The response for a run folded without its orders ([`Fold::Header`]) of which the bank has
/// said nothing yet: what the whole fold answers (`RunState::order_states`), every order
/// pending — the control count and total.
fn pending_response(run: RunState) -> pb::RunResponse {
    let control = run.control.clone();
    let fen = |fen| Some(pb::Money { fen });
    let mut response = run_response(run);
    response.states = Some(pb::PaymentOrderStates {
        pending_count: control.count,
        pending_total: fen(control.total.map_or(0, |total| total.fen)),
        paid_count: 0,
        paid_total: fen(0),
        failed_count: 0,
        failed_total: fen(0),
        returned_count: 0,
        returned_total: fen(0),
    });
    response
}

fn run_response(run: RunState) -> pb::RunResponse {
    let states = run.order_states();
    let (last_export_format, last_export_sha256) = run.last_export.clone().unwrap_or_default();
    pb::RunResponse {
        reconciliation: run.reconciliation().to_owned(),
        reconciled_by: run.reconciled_by.clone().unwrap_or_default(),
        last_export_format,
        last_export_sha256,
        states: Some(states),
        status: run.status().to_owned(),
        run_id: run.run_id,
        period: run.period,
        version: run.version,
        created_by: run.created_by,
        approved_by: run.approved_by.unwrap_or_default(),
        control: Some(run.control),
        district_code: run.district_code,
        pay_on: run.pay_on,
        pay_on_provisional: run.pay_on_provisional,
    }
}

impl PaymentApi {
    fn connected(&self) -> Result<&PaymentState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("payment is still starting".into()))
    }

    /// The answer to a command on `run_id`: the run as its append (the first one, for a retry)
    /// left it, however it moved on since. Folded without its orders while the bank has said
    /// nothing of them (every order pending, [`pending_response`]); whole after.
    async fn answer(
        &self,
        run_id: &str,
        outcome: &AppendOutcome,
    ) -> Result<pb::RunResponse, ApiError> {
        let payment = self.connected()?;
        let reads_back_empty =
            || ApiError::internal(std::io::Error::other("an appended run reads back empty"));
        let header = payment
            .store
            .load_at(run_id, outcome.last_version, Fold::Header)
            .await?
            .ok_or_else(reads_back_empty)?;
        if header.all_pending() {
            return Ok(pending_response(header));
        }
        let run = payment
            .store
            .load_at(run_id, outcome.last_version, Fold::Whole)
            .await?
            .ok_or_else(reads_back_empty)?;
        Ok(run_response(run))
    }

    async fn create_run(
        &self,
        caller: &Identity,
        request: pb::CreateRunRequest,
    ) -> Result<pb::RunResponse, ApiError> {
        caller.require_role(RUN_CREATORS)?;
        let payment = self.connected()?;
        let create = CreateRun::parse(&request, caller, &payment.district, payment.this_month())?;
        caller.require_org_scope(&payment.district)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(previous) = payment.store.run_retry(&create.run_id, &metadata).await? {
            return self.answer(&create.run_id, &previous).await;
        }
        let created = payment
            .store
            .create_run(&metadata, &create, &payment.funds, &payment.working_days)
            .await?;
        self.answer_created(&create.run_id, created).await
    }

    async fn create_repay_run(
        &self,
        caller: &Identity,
        request: pb::CreateRepayRunRequest,
    ) -> Result<pb::RunResponse, ApiError> {
        caller.require_role(RUN_CREATORS)?;
        let payment = self.connected()?;
        let create =
            CreateRepayRun::parse(&request, caller, &payment.district, payment.this_month())?;
        caller.require_org_scope(&payment.district)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(previous) = payment.store.run_retry(&create.run_id, &metadata).await? {
            return self.answer(&create.run_id, &previous).await;
        }
        let created = payment
            .store
            .create_repay_run(&metadata, &create, &payment.funds)
            .await?;
        self.answer_created(&create.run_id, created).await
    }

    /// The answer to a run's creation: from the `PaymentRunCreated` the append just wrote
    /// (every order pending: nothing is read back, so a run of a million orders is not folded
    /// to say so), or, when a concurrent retry's append won, from the log like any retry.
    /// Run `run_id` as it is now, in the caller's scope: folded without its orders while the
    /// bank has said nothing of them, whole after (as [`PaymentApi::answer`]).
    async fn view(&self, caller: &Identity, run_id: &str) -> Result<pb::RunResponse, ApiError> {
        let payment = self.connected()?;
        let header = payment
            .store
            .run_in_scope(caller, run_id, Fold::Header)
            .await?;
        if header.all_pending() {
            return Ok(pending_response(header));
        }
        let run = payment
            .store
            .run_in_scope(caller, run_id, Fold::Whole)
            .await?;
        Ok(run_response(run))
    }

    async fn answer_created(
        &self,
        run_id: &str,
        (outcome, created): (AppendOutcome, Option<pb::PaymentRunCreated>),
    ) -> Result<pb::RunResponse, ApiError> {
        let Some(created) = created.filter(|_| !outcome.deduplicated) else {
            return self.answer(run_id, &outcome).await;
        };
        let mut run = RunState::default();
        run.apply(&RunEvent::Created(created));
        run.version = outcome.last_version;
        Ok(pending_response(run))
    }

    async fn approve_run(
        &self,
        caller: &Identity,
        request: pb::ApproveRunRequest,
    ) -> Result<pb::RunResponse, ApiError> {
        caller.require_role(RUN_APPROVERS)?;
        let payment = self.connected()?;
        let approve = ApproveRun::parse(&request, caller)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let run = match payment
            .store
            .load_for_change(
                caller,
                &metadata,
                &approve.run_id,
                approve.expected_version,
                Fold::Header,
            )
            .await?
        {
            Loaded::Retried(previous) => return self.answer(&approve.run_id, &previous).await,
            Loaded::Current(run) => run,
        };
        let events = aggregate::handle(Some(&run), &Command::ApproveRun(approve.clone()))?;
        let outcome = payment
            .store
            .append_approval(&metadata, &run, events, &payment.funds)
            .await?;
        self.answer(&approve.run_id, &outcome).await
    }

    /// Streamed, in two passes over the run's orders (`crate::bank_export`): the first
    /// digests the file, the decision and the append record it, then the second sends it.
    async fn export_bank_file(
        &self,
        caller: &Identity,
        request: pb::ExportBankFileRequest,
    ) -> Result<sunshine_platform::server::RpcStream<pb::ExportBankFileResponse>, ApiError> {
        caller.require_role(FILE_EXPORTERS)?;
        let payment = self.connected()?;
        let mut export = ExportBankFile::parse(&request, caller)?;
        let run = payment
            .store
            .run_in_scope(caller, &export.run_id, Fold::Header)
            .await?;
        // Refused before the orders are read, and again in the decision.
        aggregate::exportable(&run)?;
        let part_bytes = payment.bank_file_part_bytes;
        // The care institutions' accounts are the ones in force today.
        let payees = crate::bank_export::Payees::on(payment.funds.clone(), payment.clock.today());
        let first =
            crate::bank_export::first_pass(&payment.store, payees, &run, export.format, part_bytes)
                .await?;
        export.batch = first.batch.clone();
        let events = aggregate::handle(Some(&run), &Command::ExportBankFile(export.clone()))?;
        payment
            .store
            .append(&export_metadata(caller), &run.run_id, run.version, events)
            .await?;
        Ok(crate::bank_export::send(
            payment.store.clone(),
            run.run_id.clone(),
            export.format,
            part_bytes,
            first,
            run.control.total,
            run.control.count,
        ))
    }

    async fn import_bank_result(
        &self,
        caller: &Identity,
        request: pb::ImportBankResultRequest,
    ) -> Result<pb::RunResponse, ApiError> {
        caller.require_role(RESULT_IMPORTERS)?;
        let payment = self.connected()?;
        let mut import = ImportBankResult::parse(&request, caller)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let run = match payment
            .store
            .load_current(caller, &metadata, &import.run_id)
            .await?
        {
            Loaded::Retried(previous) => return self.answer(&import.run_id, &previous).await,
            Loaded::Current(run) => run,
        };
        // The file's accounts are matched against the households' accounts, opened again,
        // and the care institutions' of the last export's day.
        import.accounts = payment.payee_accounts(&run).await?;
        let events = aggregate::handle(Some(&run), &Command::ImportBankResult(import))?;
        let outcome = payment
            .store
            .append(&metadata, &run.run_id, run.version, events)
            .await?;
        self.answer(&run.run_id, &outcome).await
    }

    async fn get_run(
        &self,
        caller: &Identity,
        request: pb::GetRunRequest,
    ) -> Result<pb::RunResponse, ApiError> {
        caller.require_role(RUN_READERS)?;
        self.connected()?;
        let mut errors = ValidationErrors::default();
        check_uuid(&mut errors, "run_id", &request.run_id, "a run id");
        errors.into_result()?;
        self.view(caller, &request.run_id).await
    }

    async fn list_run_orders(
        &self,
        caller: &Identity,
        request: pb::ListRunOrdersRequest,
    ) -> Result<pb::ListRunOrdersResponse, ApiError> {
        caller.require_role(RUN_READERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        check_uuid(&mut errors, "run_id", &request.run_id, "a run id");
        let page = request.page.unwrap_or_default();
        let limit = check_page(&mut errors, &page);
        errors.into_result()?;
        let run = payment
            .store
            .run_in_scope(caller, &request.run_id, Fold::Whole)
            .await?;
        let mut orders: Vec<&pb::PaymentOrder> = run.orders.iter().collect();
        orders.sort_by(|left, right| left.order_id.cmp(&right.order_id));
        let mut orders: Vec<pb::RunOrder> = orders
            .into_iter()
            .filter(|order| page.page_token.is_empty() || order.order_id > page.page_token)
            .take(limit + 1)
            .map(|order| {
                let (state, reason) = run.order_state(&order.order_id);
                pb::RunOrder {
                    order: Some(order.clone()),
                    state: state.to_owned(),
                    failure_reason: reason.to_owned(),
                }
            })
            .collect();
        let next_page_token = if orders.len() > limit {
            orders.truncate(limit);
            orders
                .last()
                .and_then(|last| last.order.as_ref())
                .map(|last| last.order_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListRunOrdersResponse {
            orders,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }
}

// ---- settlement: returns (退票) and the reconciliation's close ----

impl PaymentApi {
    async fn import_bank_returns(
        &self,
        caller: &Identity,
        request: pb::ImportBankReturnsRequest,
    ) -> Result<pb::RunResponse, ApiError> {
        caller.require_role(RETURNS_IMPORTERS)?;
        let payment = self.connected()?;
        let mut import = ImportBankReturns::parse(&request, caller)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let run = match payment
            .store
            .load_current(caller, &metadata, &import.run_id)
            .await?
        {
            Loaded::Retried(previous) => return self.answer(&import.run_id, &previous).await,
            Loaded::Current(run) => run,
        };
        import.accounts = payment.payee_accounts(&run).await?;
        let events = aggregate::handle(Some(&run), &Command::ImportBankReturns(import))?;
        let outcome = payment
            .store
            .append(&metadata, &run.run_id, run.version, events)
            .await?;
        self.answer(&run.run_id, &outcome).await
    }

    async fn close_reconciliation(
        &self,
        caller: &Identity,
        request: pb::CloseReconciliationRequest,
    ) -> Result<pb::RunResponse, ApiError> {
        caller.require_role(RECONCILIATION_CLOSERS)?;
        let payment = self.connected()?;
        let close = CloseReconciliation::parse(&request, caller)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let run = match payment
            .store
            .load_for_change(
                caller,
                &metadata,
                &close.run_id,
                close.expected_version,
                Fold::Whole,
            )
            .await?
        {
            Loaded::Retried(previous) => return self.answer(&close.run_id, &previous).await,
            Loaded::Current(run) => run,
        };
        let run_id = close.run_id.clone();
        let events = aggregate::handle(Some(&run), &Command::CloseReconciliation(close))?;
        let outcome = payment
            .store
            .append(&metadata, &run_id, run.version, events)
            .await?;
        self.answer(&run_id, &outcome).await
    }
}

impl PaymentApi {
    async fn get_trial_balance(
        &self,
        caller: &Identity,
        _request: pb::GetTrialBalanceRequest,
    ) -> Result<pb::TrialBalanceResponse, ApiError> {
        caller.require_role(LEDGER_READERS)?;
        let payment = self.connected()?;
        caller.require_org_scope(&payment.district)?;
        let (balance, lines) = read_model::trial_balance(payment.store.pool())
            .await
            .map_err(ApiError::internal)?;
        let difference = balance.difference().ok_or_else(|| {
            ApiError::internal(std::io::Error::other("the trial balance is out of range"))
        })?;
        Ok(pb::TrialBalanceResponse {
            debits: Some(pb::Money {
                fen: balance.debits.fen(),
            }),
            credits: Some(pb::Money {
                fen: balance.credits.fen(),
            }),
            difference: Some(pb::Money {
                fen: difference.fen(),
            }),
            line_count: u64::try_from(lines).unwrap_or_default(),
        })
    }

    async fn get_fund_balances(
        &self,
        caller: &Identity,
        _request: pb::GetFundBalancesRequest,
    ) -> Result<pb::FundBalancesResponse, ApiError> {
        caller.require_role(LEDGER_READERS)?;
        let payment = self.connected()?;
        caller.require_org_scope(&payment.district)?;
        let funds = read_model::fund_balances(payment.store.pool())
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|(fund, account, balance)| pb::FundBalance {
                fund,
                account,
                balance: Some(pb::Money { fen: balance.fen() }),
            })
            .collect();
        Ok(pb::FundBalancesResponse { funds })
    }
}

// ---- Medical assistance claims ----

/// Who submits serious-illness claims: the district center's reviewers, who receive the
/// hospital's settlement (the program's channel is the district center, its workflow
/// center_review). Finance pays them through runs, never submits them.
const CLAIM_SUBMITTERS: &[Role] = &[Role::CenterReviewer];
/// Who reads claims: the center, finance, and the auditors (纪委).
const CLAIM_READERS: &[Role] = &[
    Role::CenterReviewer,
    Role::CenterApprover,
    Role::FinanceOfficer,
    Role::FinanceApprover,
    Role::Auditor,
];

fn claim_response(claim: ClaimState) -> pb::MedicalClaimResponse {
    pb::MedicalClaimResponse {
        claim: Some(claim.claim),
        version: claim.version,
    }
}

impl PaymentApi {
    async fn submit_medical_claim(
        &self,
        caller: &Identity,
        request: pb::SubmitMedicalClaimRequest,
    ) -> Result<pb::MedicalClaimResponse, ApiError> {
        caller.require_role(CLAIM_SUBMITTERS)?;
        let payment = self.connected()?;
        let today = payment.clock.today();
        let submit = commands::parse_medical_claim(&request, caller, today)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(previous) = payment
            .store
            .claim_retry(&submit.claim_id, &metadata)
            .await?
        {
            return self.answer_claim(&submit.claim_id, &previous).await;
        }
        let case = payment
            .store
            .claim_case_in_scope(caller, &submit.case_id)
            .await?;
        let (household, paid_earlier_this_year, earlier_claims) = payment
            .store
            .claim_history(
                &case.household_id,
                &submit.patient_member_id,
                submit.settlement_date.year(),
            )
            .await?;
        let resolved = payment
            .policy
            .resolve(submit.settlement_date)
            .map_err(|error| ApiError::FailedPrecondition(error.to_string()))?;
        let this_month = Month::of(today);
        let facts = ClaimFacts {
            case,
            household,
            parameters: resolved.medical_serious_illness,
            policy_version: resolved.version.to_string(),
            paid_earlier_this_year,
            earlier_claims,
            assessed_in: this_month,
            payable_month: this_month.next().unwrap_or(this_month),
        };
        let events = medical::handle(None, &submit, &facts)?;
        let outcome = payment
            .store
            .append_new_claim(&metadata, &submit.claim_id, events)
            .await?;
        self.answer_claim(&submit.claim_id, &outcome).await
    }

    /// The claim as its (first) append left it.
    async fn answer_claim(
        &self,
        claim_id: &str,
        _outcome: &AppendOutcome,
    ) -> Result<pb::MedicalClaimResponse, ApiError> {
        // A claim is one event: what the append wrote is the whole stream.
        let claim = self
            .connected()?
            .store
            .load_claim(claim_id)
            .await?
            .ok_or_else(|| {
                ApiError::internal(std::io::Error::other("an appended claim reads back empty"))
            })?;
        Ok(claim_response(claim))
    }

    async fn get_medical_claim(
        &self,
        caller: &Identity,
        request: pb::GetMedicalClaimRequest,
    ) -> Result<pb::MedicalClaimResponse, ApiError> {
        caller.require_role(CLAIM_READERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        check_uuid(&mut errors, "claim_id", &request.claim_id, "a claim id");
        errors.into_result()?;
        let claim = payment
            .store
            .claim_in_scope(caller, &request.claim_id)
            .await?;
        Ok(claim_response(claim))
    }

    async fn list_medical_claims(
        &self,
        caller: &Identity,
        request: pb::ListMedicalClaimsRequest,
    ) -> Result<pb::ListMedicalClaimsResponse, ApiError> {
        caller.require_role(CLAIM_READERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        check_opaque_id(&mut errors, "case_id", &request.case_id);
        let page = request.page.unwrap_or_default();
        let limit = check_page(&mut errors, &page);
        errors.into_result()?;
        payment
            .store
            .claim_case_in_scope(caller, &request.case_id)
            .await?;
        let mut ids = read_model::case_claims(
            payment.store.pool(),
            &request.case_id,
            &page.page_token,
            limit + 1,
        )
        .await
        .map_err(ApiError::internal)?;
        let next_page_token = if ids.len() > limit {
            ids.truncate(limit);
            ids.last().cloned().unwrap_or_default()
        } else {
            String::new()
        };
        let mut claims = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(claim) = payment.store.load_claim(id).await? {
                claims.push(claim_response(claim));
            }
        }
        Ok(pb::ListMedicalClaimsResponse {
            claims,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }
}

// ---- Recovery (追缴) ----

/// Who records a repayment received: the district's finance officers.
const REPAYMENT_RECORDERS: &[Role] = &[Role::FinanceOfficer];
/// Who writes off what cannot be recovered: the district's finance approvers (never the
/// officer who recorded the claim's last repayment).
const WRITE_OFF_APPROVERS: &[Role] = &[Role::FinanceApprover];
/// Who reads claims: finance, and the auditors (纪委).
const RECOVERY_READERS: &[Role] = &[Role::FinanceOfficer, Role::FinanceApprover, Role::Auditor];

impl PaymentApi {
    /// The answer to a command on `claim_id`: the claim as its append (the first one, for a
    /// retry) left it.
    async fn answer_recovery_claim(
        &self,
        claim_id: &str,
        outcome: &AppendOutcome,
    ) -> Result<pb::RecoveryClaimResponse, ApiError> {
        let claim = self
            .connected()?
            .store
            .recovery_claim_at(claim_id, outcome.last_version)
            .await?
            .ok_or_else(|| {
                ApiError::internal(std::io::Error::other("an appended claim reads back empty"))
            })?;
        Ok(recovery::claim_response(&claim))
    }

    async fn list_recovery_claims(
        &self,
        caller: &Identity,
        request: pb::ListRecoveryClaimsRequest,
    ) -> Result<pb::ListRecoveryClaimsResponse, ApiError> {
        caller.require_role(RECOVERY_READERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        let page = request.page.unwrap_or_default();
        let limit = check_page(&mut errors, &page);
        errors.into_result()?;
        // The claims are the district's, as its ledger: another district's caller is refused.
        caller.require_org_scope(&payment.district)?;
        let mut claim_ids = read_model::recovery_claim_ids(
            payment.store.pool(),
            payment.district.as_str(),
            &page.page_token,
            limit + 1,
        )
        .await
        .map_err(ApiError::internal)?;
        let next_page_token = if claim_ids.len() > limit {
            claim_ids.truncate(limit);
            claim_ids.last().cloned().unwrap_or_default()
        } else {
            String::new()
        };
        let mut claims = Vec::with_capacity(claim_ids.len());
        for claim_id in &claim_ids {
            let claim = payment
                .store
                .recovery_claim_in_scope(caller, claim_id)
                .await?;
            claims.push(recovery::claim_response(&claim));
        }
        Ok(pb::ListRecoveryClaimsResponse {
            claims,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }

    async fn get_recovery_claim(
        &self,
        caller: &Identity,
        request: pb::GetRecoveryClaimRequest,
    ) -> Result<pb::RecoveryClaimResponse, ApiError> {
        caller.require_role(RECOVERY_READERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        check_uuid(&mut errors, "claim_id", &request.claim_id, "a claim id");
        errors.into_result()?;
        let claim = payment
            .store
            .recovery_claim_in_scope(caller, &request.claim_id)
            .await?;
        Ok(recovery::claim_response(&claim))
    }

    async fn record_recovery_repayment(
        &self,
        caller: &Identity,
        request: pb::RecordRecoveryRepaymentRequest,
    ) -> Result<pb::RecoveryClaimResponse, ApiError> {
        caller.require_role(REPAYMENT_RECORDERS)?;
        self.connected()?;
        let repayment = RecordRecoveryRepayment::parse(&request, caller)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let claim_id = repayment.claim_id.clone();
        let expected_version = repayment.expected_version;
        self.change_recovery_claim(
            caller,
            &metadata,
            &claim_id,
            expected_version,
            RecoveryCommand::RecordRepayment(repayment),
        )
        .await
    }

    async fn write_off_recovery(
        &self,
        caller: &Identity,
        request: pb::WriteOffRecoveryRequest,
    ) -> Result<pb::RecoveryClaimResponse, ApiError> {
        caller.require_role(WRITE_OFF_APPROVERS)?;
        self.connected()?;
        let write_off = WriteOffRecovery::parse(&request, caller)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let claim_id = write_off.claim_id.clone();
        let expected_version = write_off.expected_version;
        self.change_recovery_claim(
            caller,
            &metadata,
            &claim_id,
            expected_version,
            RecoveryCommand::WriteOff(write_off),
        )
        .await
    }

    /// A command on a claim's last steps: load (a retry, or the claim in scope at the
    /// version seen), decide, append, answer.
    async fn change_recovery_claim(
        &self,
        caller: &Identity,
        metadata: &EventMetadata,
        claim_id: &str,
        expected_version: u64,
        command: RecoveryCommand,
    ) -> Result<pb::RecoveryClaimResponse, ApiError> {
        let payment = self.connected()?;
        let claim = match payment
            .store
            .load_recovery_claim_for_change(caller, metadata, claim_id, expected_version)
            .await?
        {
            LoadedClaim::Retried(previous) => {
                return self.answer_recovery_claim(claim_id, &previous).await;
            }
            LoadedClaim::Current(claim) => claim,
        };
        let events = recovery::handle(&claim, &command)?;
        let outcome = payment
            .store
            .append_recovery_claim(metadata, claim_id, claim.version, events)
            .await?;
        self.answer_recovery_claim(claim_id, &outcome).await
    }
}

// ---- Queries ----

/// Who reads a household's payments, the runs and the monthly report: finance, and the
/// auditors (纪委).
const QUERY_READERS: &[Role] = &[Role::FinanceOfficer, Role::FinanceApprover, Role::Auditor];
/// Who takes the 纪委's export of a run: the auditors, and finance approvers (who hand it to
/// them); never the officers who prepare the runs.
const INSPECTION_EXPORTERS: &[Role] = &[Role::Auditor, Role::FinanceApprover];

/// The page of `items` (at most `limit + 1` read) and the next page's token.
fn page_of<T>(mut items: Vec<T>, limit: usize, token: impl Fn(&T) -> String) -> (Vec<T>, String) {
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(&token).unwrap_or_default();
        (items, next)
    } else {
        (items, String::new())
    }
}

impl PaymentApi {
    async fn list_household_payments(
        &self,
        caller: &Identity,
        request: pb::ListHouseholdPaymentsRequest,
    ) -> Result<pb::ListHouseholdPaymentsResponse, ApiError> {
        caller.require_role(QUERY_READERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        check_opaque_id(&mut errors, "household_id", &request.household_id);
        let page = request.page.unwrap_or_default();
        let limit = check_page(&mut errors, &page);
        errors.into_result()?;
        let not_found = crate::errors::household_not_found;
        // Every household payment pays is the district's: another district's caller reads
        // exactly what a household with no payments reads.
        if !caller.org_unit.covers(&payment.district) {
            return Err(not_found());
        }
        let pool = payment.store.pool();
        let cursor = read_model::household_cursor(pool, &request.household_id, &page.page_token)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::invalid_field("page.page_token", "a token from a previous page")
            })?;
        let payments =
            read_model::household_payments(pool, &request.household_id, &cursor, limit + 1)
                .await
                .map_err(ApiError::internal)?;
        if payments.is_empty() && page.page_token.is_empty() {
            return Err(not_found());
        }
        let (payments, next_page_token) = page_of(payments, limit, |payment| {
            payment
                .order
                .as_ref()
                .map(|order| order.order_id.clone())
                .unwrap_or_default()
        });
        Ok(pb::ListHouseholdPaymentsResponse {
            payments,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }

    async fn list_runs(
        &self,
        caller: &Identity,
        request: pb::ListRunsRequest,
    ) -> Result<pb::ListRunsResponse, ApiError> {
        caller.require_role(QUERY_READERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        check_query_period(&mut errors, "period", &request.period, true);
        check_run_status(&mut errors, "status", &request.status);
        let page = request.page.unwrap_or_default();
        let limit = check_page(&mut errors, &page);
        errors.into_result()?;
        // The runs are the district's, as its ledger: another district's caller is refused.
        caller.require_org_scope(&payment.district)?;
        let ids = read_model::run_ids(payment.store.pool(), &request.period)
            .await
            .map_err(ApiError::internal)?;
        let start = if page.page_token.is_empty() {
            0
        } else {
            ids.iter()
                .position(|(_, run_id)| *run_id == page.page_token)
                .map(|at| at + 1)
                .ok_or_else(|| {
                    ApiError::invalid_field("page.page_token", "a token from a previous page")
                })?
        };
        // A run's status is its stream's: each is loaded, and the filter applied, until the
        // page is full (a district has a few runs a month).
        let mut runs = Vec::new();
        for (_, run_id) in &ids[start..] {
            if runs.len() > limit {
                break;
            }
            let run = self.view(caller, run_id).await?;
            if request.status.is_empty() || run.status == request.status {
                runs.push(run);
            }
        }
        let (runs, next_page_token) = page_of(runs, limit, |run| run.run_id.clone());
        Ok(pb::ListRunsResponse {
            runs,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }

    async fn get_monthly_report(
        &self,
        caller: &Identity,
        request: pb::GetMonthlyReportRequest,
    ) -> Result<pb::MonthlyReportResponse, ApiError> {
        caller.require_role(QUERY_READERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        check_query_period(&mut errors, "period", &request.period, false);
        errors.into_result()?;
        caller.require_org_scope(&payment.district)?;
        let (orders, recoveries) =
            read_model::monthly_groups(payment.store.pool(), &request.period)
                .await
                .map_err(ApiError::internal)?;
        let (lines, total) = read_model::report_lines(&orders, &recoveries);
        Ok(pb::MonthlyReportResponse {
            period: request.period,
            lines,
            total: Some(total),
        })
    }

    async fn export_run_for_inspection(
        &self,
        caller: &Identity,
        request: pb::ExportRunForInspectionRequest,
    ) -> Result<pb::ExportRunForInspectionResponse, ApiError> {
        caller.require_role(INSPECTION_EXPORTERS)?;
        let payment = self.connected()?;
        let mut errors = ValidationErrors::default();
        check_uuid(&mut errors, "run_id", &request.run_id, "a run id");
        errors.into_result()?;
        let run = payment
            .store
            .run_in_scope(caller, &request.run_id, Fold::Whole)
            .await?;
        let key = payment.inspection_key.as_ref().ok_or_else(|| {
            ApiError::FailedPrecondition(
                "no inspection key is configured (payment.inspection_key_file)".into(),
            )
        })?;
        let mut orders = read_model::inspected_orders(payment.store.pool(), &run.run_id)
            .await
            .map_err(ApiError::internal)?;
        // The table is the projection's: the export waits until it has every order of the
        // run in the state the run's stream gives it.
        if !crate::inspection::orders_agree(&orders, &run.order_states()) {
            return Err(ApiError::Unavailable(
                "the run's orders are still being recorded; try again".into(),
            ));
        }
        // Each account's last 4 digits, from the household's account opened for the export,
        // or the care institution's.
        let numbers = payment.payee_accounts(&run).await?;
        for order in &mut orders {
            let number = if order.care_institution_code.is_empty() {
                numbers.of(&order.household_id)
            } else {
                numbers
                    .institutions
                    .get(&order.care_institution_code)
                    .map(String::as_str)
            };
            order.account_tail = number
                .map(|number| {
                    crate::bank_files::Account {
                        number: number.to_owned(),
                        holder_name: String::new(),
                    }
                    .tail()
                })
                .unwrap_or_default();
        }
        drop(numbers);
        let file = crate::inspection::write_export(key, &orders);
        let sha256 = crate::bank_files::sha256_hex(&file);
        let count = u32::try_from(orders.len()).unwrap_or(u32::MAX);
        let key_id = key.key_id();
        payment
            .store
            .record_inspection_export(
                &export_metadata(caller),
                &pb::InspectionExported {
                    run_id: run.run_id.clone(),
                    sha256: sha256.clone(),
                    count,
                    key_id: key_id.clone(),
                    exported_by: caller.subject.clone(),
                },
            )
            .await?;
        Ok(pb::ExportRunForInspectionResponse {
            file,
            sha256,
            count,
            key_id,
        })
    }
}

// ---- Emergency cash (急难) ----

/// Who records an emergency cash payment: the district's finance officers.
const CASH_RECORDERS: &[Role] = &[Role::FinanceOfficer];

impl PaymentApi {
    async fn record_emergency_cash_payment(
        &self,
        caller: &Identity,
        request: pb::RecordEmergencyCashPaymentRequest,
    ) -> Result<pb::EmergencyCashPaymentResponse, ApiError> {
        caller.require_role(CASH_RECORDERS)?;
        let payment = self.connected()?;
        let command = cash::parse(&request, &caller.subject, payment.clock.today())?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if payment
            .store
            .cash_retry(&command.payment_id, &metadata)
            .await?
            .is_none()
        {
            let entitlement = payment
                .store
                .entitlement_in_scope(caller, &command.entitlement_id)
                .await?;
            let state = payment.store.load_cash_payment(&command.payment_id).await?;
            let facts = cash::CashFacts {
                entitlement,
                funds: &payment.funds,
                district_code: payment.district.as_str().to_owned(),
            };
            let events = cash::handle(state.as_ref(), &command, &facts)?;
            payment
                .store
                .append_cash_payment(&metadata, events, &payment.funds)
                .await?;
        }
        // A payment is one event: what the (first) append wrote is the whole stream.
        let state = payment
            .store
            .load_cash_payment(&command.payment_id)
            .await?
            .ok_or_else(|| {
                ApiError::internal(std::io::Error::other(
                    "an appended cash payment reads back empty",
                ))
            })?;
        Ok(cash::response(state))
    }
}

// Every RPC: the verified caller, then the handler, then the answer (or the error's status).
sunshine_platform::service_rpcs! {
    PaymentService for PaymentApi {
        create_run: pb::CreateRunRequest => pb::RunResponse;
        approve_run: pb::ApproveRunRequest => pb::RunResponse;
        import_bank_result: pb::ImportBankResultRequest => pb::RunResponse;
        create_repay_run: pb::CreateRepayRunRequest => pb::RunResponse;
        get_run: pb::GetRunRequest => pb::RunResponse;
        list_run_orders: pb::ListRunOrdersRequest => pb::ListRunOrdersResponse;
        get_trial_balance: pb::GetTrialBalanceRequest => pb::TrialBalanceResponse;
        get_fund_balances: pb::GetFundBalancesRequest => pb::FundBalancesResponse;
        // settlement
        import_bank_returns: pb::ImportBankReturnsRequest => pb::RunResponse;
        close_reconciliation: pb::CloseReconciliationRequest => pb::RunResponse;
        // Medical assistance claims.
        submit_medical_claim: pb::SubmitMedicalClaimRequest => pb::MedicalClaimResponse;
        get_medical_claim: pb::GetMedicalClaimRequest => pb::MedicalClaimResponse;
        list_medical_claims: pb::ListMedicalClaimsRequest => pb::ListMedicalClaimsResponse;
        // Recovery (追缴).
        list_recovery_claims: pb::ListRecoveryClaimsRequest => pb::ListRecoveryClaimsResponse;
        get_recovery_claim: pb::GetRecoveryClaimRequest => pb::RecoveryClaimResponse;
        record_recovery_repayment: pb::RecordRecoveryRepaymentRequest => pb::RecoveryClaimResponse;
        write_off_recovery: pb::WriteOffRecoveryRequest => pb::RecoveryClaimResponse;
        // Queries.
        list_household_payments: pb::ListHouseholdPaymentsRequest => pb::ListHouseholdPaymentsResponse;
        list_runs: pb::ListRunsRequest => pb::ListRunsResponse;
        get_monthly_report: pb::GetMonthlyReportRequest => pb::MonthlyReportResponse;
        export_run_for_inspection: pb::ExportRunForInspectionRequest => pb::ExportRunForInspectionResponse;
        // Emergency cash (急难).
        record_emergency_cash_payment: pb::RecordEmergencyCashPaymentRequest => pb::EmergencyCashPaymentResponse;
    }
    streaming {
        // The bank file, in parts (crate::bank_export).
        export_bank_file: pb::ExportBankFileRequest => pb::ExportBankFileResponse as ExportBankFileStream;
    }
}
