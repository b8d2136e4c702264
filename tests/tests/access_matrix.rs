//! The access matrix (issue 9): `tests/access-matrix.toml` gives the one expected code of
//! every RPC of the covered services, for each of the nine roles and each of five relations of
//! the caller to the target (own village, another village of the same street, another street,
//! the district, another district). The file is checked complete against the protobuf
//! descriptors — a new RPC without rows fails — and expanded to every cell; then every cell is
//! called over gRPC against intake, review and payment on PostgreSQL + NATS JetStream and on
//! SQLite + the in-process bus. Every mismatch is collected and reported in one table; no cell
//! is skipped.
//!
//! The fixtures are set up once per backend. A cell that succeeds must not change what a later
//! cell finds, so commands that change state either hit a stable refusal on the shared target
//! (a stale version, the wrong stage, an open application) or run on a case of their own that
//! is put back into shape before each cell (see each table's `request` in the file).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prost::Message as _;
use serde::Deserialize;
use sunshine_domain::{OrgTier, OrgUnitCode};
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_platform::Role;
use sunshine_platform::clock::ManualClock;
use sunshine_proto::events::TypedEvent;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_client::DepartmentIntegrationServiceClient;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use sunshine_proto::v1::review_service_client::ReviewServiceClient;
use sunshine_proto::v1::service_info_service_client::ServiceInfoServiceClient;
use sunshine_tests::households::{
    Person, date, dibao_application, family, national_id, registration,
};
use sunshine_tests::{
    RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, with_token,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const MATRIX_FILE: &str = include_str!("../access-matrix.toml");
const PACKAGE: &str = "sunshine.v1";
/// The services whose every RPC must have rows. A later service adds itself here, its rows to
/// the file and its probes below.
const COVERED_SERVICES: [&str; 5] = [
    "IntakeService",
    "ReviewService",
    "PaymentService",
    "ServiceInfoService",
    // department-integration
    "DepartmentIntegrationService",
];
/// The relations of issue 9, in the order of every row's codes.
const RELATIONS: [&str; 5] = [
    "own_village",
    "other_village_same_street",
    "other_street",
    "own_district",
    "other_district",
];
const PATIENCE: Duration = Duration::from_secs(30);

/// Every gRPC code by the name the file uses.
const CODE_NAMES: [(&str, Code); 17] = [
    ("OK", Code::Ok),
    ("CANCELLED", Code::Cancelled),
    ("UNKNOWN", Code::Unknown),
    ("INVALID_ARGUMENT", Code::InvalidArgument),
    ("DEADLINE_EXCEEDED", Code::DeadlineExceeded),
    ("NOT_FOUND", Code::NotFound),
    ("ALREADY_EXISTS", Code::AlreadyExists),
    ("PERMISSION_DENIED", Code::PermissionDenied),
    ("RESOURCE_EXHAUSTED", Code::ResourceExhausted),
    ("FAILED_PRECONDITION", Code::FailedPrecondition),
    ("ABORTED", Code::Aborted),
    ("OUT_OF_RANGE", Code::OutOfRange),
    ("UNIMPLEMENTED", Code::Unimplemented),
    ("INTERNAL", Code::Internal),
    ("UNAVAILABLE", Code::Unavailable),
    ("DATA_LOSS", Code::DataLoss),
    ("UNAUTHENTICATED", Code::Unauthenticated),
];

fn parse_code(name: &str) -> Option<Code> {
    CODE_NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, code)| *code)
}

fn code_name(code: Code) -> &'static str {
    CODE_NAMES
        .iter()
        .find(|(_, known)| *known == code)
        .map_or("?", |(name, _)| name)
}

// ---- The file ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    columns: Vec<String>,
    target: TargetSection,
    /// role → the tier its token must carry.
    tiers: BTreeMap<String, String>,
    /// relation → tier → the caller's org unit.
    relation: BTreeMap<String, BTreeMap<String, String>>,
    /// role → relation → the code whatever the RPC (the token is refused first).
    tokens: BTreeMap<String, BTreeMap<String, String>>,
    /// service → method → its rows.
    rpc: BTreeMap<String, BTreeMap<String, RpcTable>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSection {
    village: String,
    #[allow(dead_code)]
    description: String,
}

#[derive(Debug, Deserialize)]
struct RpcTable {
    request: String,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    default: Option<String>,
    /// role → its row; any other key is reported as an unknown role.
    #[serde(flatten)]
    roles: BTreeMap<String, Row>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Row {
    Codes(Vec<String>),
    Noted(NotedRow),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotedRow {
    codes: Vec<String>,
    why: String,
}

impl Row {
    fn codes(&self) -> &[String] {
        match self {
            Row::Codes(codes) => codes,
            Row::Noted(noted) => &noted.codes,
        }
    }

    fn why(&self) -> Option<&str> {
        match self {
            Row::Codes(_) => None,
            Row::Noted(noted) => Some(&noted.why),
        }
    }
}

/// The RPCs this test can call; the compiler makes sure each has a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    RegisterHousehold,
    RecordCircumstanceChange,
    RecordDeath,
    CorrectDeathRecord,
    RecordMove,
    // household composition
    AddHouseholdMember,
    RemoveHouseholdMember,
    SubmitApplication,
    RegisterOfficialRelative,
    GetHousehold,
    FindHousehold,
    ListApplications,
    GetCase,
    AssignInvestigators,
    RecordHomeVisit,
    RequestVerification,
    RecordOpinion,
    StartPublicity,
    AnswerObjection,
    GrantAssistFirst,
    Decide,
    ListOverdueCases,
    ReturnForMaterial,
    Withdraw,
    ExtendDeadline,
    ListWorkQueue,
    NotifyRefusal,
    DrawHomeVisitSample,
    CreateRun,
    ApproveRun,
    GetRun,
    ListRunOrders,
    ExportBankFile,
    ImportBankResult,
    CreateRepayRun,
    GetTrialBalance,
    GetFundBalances,
    ImportBankReturns,
    CloseReconciliation,
    SubmitMedicalClaim,
    GetMedicalClaim,
    ListMedicalClaims,
    ListRecoveryClaims,
    GetRecoveryClaim,
    RecordRecoveryRepayment,
    WriteOffRecovery,
    ListHouseholdPayments,
    ListRuns,
    GetMonthlyReport,
    ExportRunForInspection,
    WhoAmI,
    GetServiceInfo,
    // department-integration
    PushAssistanceRecords,
    ImportAssistanceCsv,
    QueryHouseholdAssistance,
    // department-integration: the economic-status check
    RecordConsent,
    OpenCheck,
    AnswerCheck,
    RecordOverdueVerifications,
    ListCheckWorkQueue,
    RequestRecheck,
    // department-integration: duplicate assistance and the monitoring platform
    ListDuplicateAssistance,
    ImportMonitoringWarnings,
    CloseMonitoringWarning,
    ListMonitoringWarnings,
    ExportMonitoringFeed,
    // department-integration: subscriptions and linkage notices (slice 3)
    SubscribeEvents,
    AcknowledgeLinkageNotice,
    ListLinkageNotices,
    // payment: emergency cash (急难)
    RecordEmergencyCashPayment,
}

impl Rpc {
    fn from_name(service: &str, method: &str) -> Option<Rpc> {
        Some(match (service, method) {
            ("IntakeService", "RegisterHousehold") => Rpc::RegisterHousehold,
            ("IntakeService", "RecordCircumstanceChange") => Rpc::RecordCircumstanceChange,
            ("IntakeService", "RecordDeath") => Rpc::RecordDeath,
            ("IntakeService", "CorrectDeathRecord") => Rpc::CorrectDeathRecord,
            ("IntakeService", "RecordMove") => Rpc::RecordMove,
            // household composition
            ("IntakeService", "AddHouseholdMember") => Rpc::AddHouseholdMember,
            ("IntakeService", "RemoveHouseholdMember") => Rpc::RemoveHouseholdMember,
            ("IntakeService", "SubmitApplication") => Rpc::SubmitApplication,
            ("IntakeService", "RegisterOfficialRelative") => Rpc::RegisterOfficialRelative,
            ("IntakeService", "GetHousehold") => Rpc::GetHousehold,
            ("IntakeService", "FindHousehold") => Rpc::FindHousehold,
            ("IntakeService", "ListApplications") => Rpc::ListApplications,
            ("ReviewService", "GetCase") => Rpc::GetCase,
            ("ReviewService", "AssignInvestigators") => Rpc::AssignInvestigators,
            ("ReviewService", "RecordHomeVisit") => Rpc::RecordHomeVisit,
            ("ReviewService", "RequestVerification") => Rpc::RequestVerification,
            ("ReviewService", "RecordOpinion") => Rpc::RecordOpinion,
            ("ReviewService", "StartPublicity") => Rpc::StartPublicity,
            ("ReviewService", "AnswerObjection") => Rpc::AnswerObjection,
            ("ReviewService", "GrantAssistFirst") => Rpc::GrantAssistFirst,
            ("ReviewService", "Decide") => Rpc::Decide,
            ("ReviewService", "ListOverdueCases") => Rpc::ListOverdueCases,
            ("ReviewService", "ReturnForMaterial") => Rpc::ReturnForMaterial,
            ("ReviewService", "Withdraw") => Rpc::Withdraw,
            ("ReviewService", "ExtendDeadline") => Rpc::ExtendDeadline,
            ("ReviewService", "ListWorkQueue") => Rpc::ListWorkQueue,
            ("ReviewService", "NotifyRefusal") => Rpc::NotifyRefusal,
            ("ReviewService", "DrawHomeVisitSample") => Rpc::DrawHomeVisitSample,
            ("PaymentService", "CreateRun") => Rpc::CreateRun,
            ("PaymentService", "ApproveRun") => Rpc::ApproveRun,
            ("PaymentService", "GetRun") => Rpc::GetRun,
            ("PaymentService", "ListRunOrders") => Rpc::ListRunOrders,
            ("PaymentService", "ExportBankFile") => Rpc::ExportBankFile,
            ("PaymentService", "ImportBankResult") => Rpc::ImportBankResult,
            ("PaymentService", "CreateRepayRun") => Rpc::CreateRepayRun,
            ("PaymentService", "GetTrialBalance") => Rpc::GetTrialBalance,
            ("PaymentService", "GetFundBalances") => Rpc::GetFundBalances,
            ("PaymentService", "ImportBankReturns") => Rpc::ImportBankReturns,
            ("PaymentService", "CloseReconciliation") => Rpc::CloseReconciliation,
            ("PaymentService", "SubmitMedicalClaim") => Rpc::SubmitMedicalClaim,
            ("PaymentService", "GetMedicalClaim") => Rpc::GetMedicalClaim,
            ("PaymentService", "ListMedicalClaims") => Rpc::ListMedicalClaims,
            ("PaymentService", "ListRecoveryClaims") => Rpc::ListRecoveryClaims,
            ("PaymentService", "GetRecoveryClaim") => Rpc::GetRecoveryClaim,
            ("PaymentService", "RecordRecoveryRepayment") => Rpc::RecordRecoveryRepayment,
            ("PaymentService", "WriteOffRecovery") => Rpc::WriteOffRecovery,
            ("PaymentService", "ListHouseholdPayments") => Rpc::ListHouseholdPayments,
            ("PaymentService", "ListRuns") => Rpc::ListRuns,
            ("PaymentService", "GetMonthlyReport") => Rpc::GetMonthlyReport,
            ("PaymentService", "ExportRunForInspection") => Rpc::ExportRunForInspection,
            ("ServiceInfoService", "WhoAmI") => Rpc::WhoAmI,
            ("ServiceInfoService", "GetServiceInfo") => Rpc::GetServiceInfo,
            // department-integration
            ("DepartmentIntegrationService", "PushAssistanceRecords") => Rpc::PushAssistanceRecords,
            ("DepartmentIntegrationService", "ImportAssistanceCsv") => Rpc::ImportAssistanceCsv,
            ("DepartmentIntegrationService", "QueryHouseholdAssistance") => {
                Rpc::QueryHouseholdAssistance
            }
            // department-integration: the economic-status check
            ("DepartmentIntegrationService", "RecordConsent") => Rpc::RecordConsent,
            ("DepartmentIntegrationService", "OpenCheck") => Rpc::OpenCheck,
            ("DepartmentIntegrationService", "AnswerCheck") => Rpc::AnswerCheck,
            ("DepartmentIntegrationService", "RecordOverdueVerifications") => {
                Rpc::RecordOverdueVerifications
            }
            ("DepartmentIntegrationService", "ListCheckWorkQueue") => Rpc::ListCheckWorkQueue,
            ("DepartmentIntegrationService", "RequestRecheck") => Rpc::RequestRecheck,
            // department-integration: duplicate assistance and the monitoring platform
            ("DepartmentIntegrationService", "ListDuplicateAssistance") => {
                Rpc::ListDuplicateAssistance
            }
            ("DepartmentIntegrationService", "ImportMonitoringWarnings") => {
                Rpc::ImportMonitoringWarnings
            }
            ("DepartmentIntegrationService", "CloseMonitoringWarning") => {
                Rpc::CloseMonitoringWarning
            }
            ("DepartmentIntegrationService", "ListMonitoringWarnings") => {
                Rpc::ListMonitoringWarnings
            }
            ("DepartmentIntegrationService", "ExportMonitoringFeed") => Rpc::ExportMonitoringFeed,
            // department-integration: subscriptions and linkage notices (slice 3)
            ("DepartmentIntegrationService", "SubscribeEvents") => Rpc::SubscribeEvents,
            ("DepartmentIntegrationService", "AcknowledgeLinkageNotice") => {
                Rpc::AcknowledgeLinkageNotice
            }
            ("DepartmentIntegrationService", "ListLinkageNotices") => Rpc::ListLinkageNotices,
            // payment: emergency cash (急难)
            ("PaymentService", "RecordEmergencyCashPayment") => Rpc::RecordEmergencyCashPayment,
            _ => return None,
        })
    }
}

/// One cell: an RPC, a role, a relation, and the code it must answer.
#[derive(Debug, Clone)]
struct Cell {
    service: String,
    method: String,
    rpc: Rpc,
    role: Role,
    relation: &'static str,
    /// The org unit of the caller's token.
    org_unit: String,
    /// Whether that org unit is at the role's own tier.
    at_own_tier: bool,
    expected: Code,
    why: Option<String>,
}

impl Cell {
    /// The caller's token subject: one officer per cell, so that no rule that remembers
    /// officers (four eyes, read quotas) carries over from one cell to another.
    fn subject(&self) -> String {
        format!("{}.{}.{}", self.method, self.role.as_str(), self.relation)
    }

    fn command_id(&self) -> String {
        format!("matrix-{}", self.subject())
    }

    /// Whether the caller's org unit covers the target village.
    fn covers_target(&self) -> bool {
        match (
            OrgUnitCode::parse(&self.org_unit),
            OrgUnitCode::parse(VILLAGE),
        ) {
            (Ok(caller), Ok(target)) => caller.covers(&target),
            _ => false,
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}/{} as {} ({}, {})",
            self.service,
            self.method,
            self.role.as_str(),
            self.relation,
            self.org_unit
        )
    }
}

/// The RPCs of each covered service, from the encoded descriptors `sunshine-proto` compiles.
fn described_rpcs() -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let set = prost_types::FileDescriptorSet::decode(sunshine_proto::FILE_DESCRIPTOR_SET)?;
    let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &set.file {
        if file.package() != PACKAGE {
            continue;
        }
        for service in &file.service {
            if !COVERED_SERVICES.contains(&service.name()) {
                continue;
            }
            let methods = services.entry(service.name().to_owned()).or_default();
            for method in &service.method {
                methods.insert(method.name().to_owned());
            }
        }
    }
    Ok(services)
}

fn parse_tier(name: &str) -> Option<OrgTier> {
    match name {
        "village_community" => Some(OrgTier::VillageCommunity),
        "street_town" => Some(OrgTier::StreetTown),
        "district" => Some(OrgTier::District),
        _ => None,
    }
}

/// Checks the file complete and consistent and expands it to one cell per RPC × role ×
/// relation; every problem is reported at once.
fn expand_matrix(text: &str) -> Result<Vec<Cell>, Vec<String>> {
    let file: MatrixFile = toml::from_str(text).map_err(|error| vec![error.to_string()])?;
    let described = described_rpcs().map_err(|error| vec![error.to_string()])?;
    let mut problems = Vec::new();

    if file.columns != RELATIONS {
        problems.push(format!(
            "columns must be exactly {RELATIONS:?}, found {:?}",
            file.columns
        ));
    }
    if file.target.village != VILLAGE {
        problems.push(format!(
            "target.village must be the fixtures' village {VILLAGE}, found {}",
            file.target.village
        ));
    }
    let role_names: BTreeSet<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
    let mut role_tiers: BTreeMap<&str, (&str, OrgTier)> = BTreeMap::new();
    for role in Role::ALL {
        match file.tiers.get(role.as_str()) {
            None => problems.push(format!("tiers: no tier for {}", role.as_str())),
            Some(name) => match parse_tier(name) {
                Some(tier) => {
                    role_tiers.insert(role.as_str(), (name.as_str(), tier));
                }
                None => problems.push(format!("tiers.{}: unknown tier {name}", role.as_str())),
            },
        }
    }
    for role in file.tiers.keys() {
        if !role_names.contains(role.as_str()) {
            problems.push(format!("tiers: {role} is not a role"));
        }
    }
    for relation in file.relation.keys() {
        if !RELATIONS.contains(&relation.as_str()) {
            problems.push(format!("relation.{relation} is not one of {RELATIONS:?}"));
        }
    }
    for relation in RELATIONS {
        let Some(units) = file.relation.get(relation) else {
            problems.push(format!("relation.{relation} is missing"));
            continue;
        };
        for tier in ["village_community", "street_town", "district"] {
            match units.get(tier) {
                None => problems.push(format!("relation.{relation}.{tier} is missing")),
                Some(code) if OrgUnitCode::parse(code).is_err() => problems.push(format!(
                    "relation.{relation}.{tier}: {code} is not an org unit"
                )),
                Some(_) => {}
            }
        }
        for tier in units.keys() {
            if parse_tier(tier).is_none() {
                problems.push(format!("relation.{relation}.{tier} is not a tier"));
            }
        }
    }
    for (role, relations) in &file.tokens {
        if !role_names.contains(role.as_str()) {
            problems.push(format!("tokens.{role}: not a role"));
        }
        for (relation, code) in relations {
            if !RELATIONS.contains(&relation.as_str()) {
                problems.push(format!("tokens.{role}.{relation}: not a relation"));
            }
            if parse_code(code).is_none() {
                problems.push(format!(
                    "tokens.{role}.{relation}: {code} is not a gRPC code"
                ));
            }
        }
    }

    for service in COVERED_SERVICES {
        if !file.rpc.contains_key(service) {
            problems.push(format!("no rows for the service {service}"));
        }
        if !described.contains_key(service) {
            problems.push(format!("{service} is not in the {PACKAGE} descriptors"));
        }
    }
    let mut cells = Vec::new();
    let mut expected_cells = 0;
    for (service, methods) in &described {
        expected_cells += methods.len() * Role::ALL.len() * RELATIONS.len();
        let tables = file.rpc.get(service);
        for method in methods {
            let Some(table) = tables.and_then(|tables| tables.get(method)) else {
                problems.push(format!("{service}/{method}: an RPC without rows"));
                continue;
            };
            let Some(rpc) = Rpc::from_name(service, method) else {
                problems.push(format!("{service}/{method}: no probe in this test"));
                continue;
            };
            expand_rpc(
                &file,
                &role_tiers,
                service,
                method,
                rpc,
                table,
                &mut cells,
                &mut problems,
            );
        }
    }
    for (service, tables) in &file.rpc {
        for method in tables.keys() {
            if !described
                .get(service)
                .is_some_and(|methods| methods.contains(method))
            {
                problems.push(format!(
                    "rpc.{service}.{method}: not an RPC of a covered service"
                ));
            }
        }
    }
    if problems.is_empty() && cells.len() != expected_cells {
        problems.push(format!(
            "expanded {} cells, expected {expected_cells}",
            cells.len()
        ));
    }
    if problems.is_empty() {
        Ok(cells)
    } else {
        Err(problems)
    }
}

#[allow(clippy::too_many_arguments)]
fn expand_rpc(
    file: &MatrixFile,
    role_tiers: &BTreeMap<&str, (&str, OrgTier)>,
    service: &str,
    method: &str,
    rpc: Rpc,
    table: &RpcTable,
    cells: &mut Vec<Cell>,
    problems: &mut Vec<String>,
) {
    let place = format!("rpc.{service}.{method}");
    if table.request.trim().is_empty() {
        problems.push(format!("{place}: say what each cell sends in `request`"));
    }
    for role in table.roles.keys() {
        if Role::parse(role).is_none() {
            problems.push(format!(
                "{place}.{role}: not a role (nor request, why, default)"
            ));
        }
    }
    let default = match &table.default {
        Some(name) => match parse_code(name) {
            Some(code) => Some(code),
            None => {
                problems.push(format!("{place}.default: {name} is not a gRPC code"));
                None
            }
        },
        None => None,
    };
    for role in Role::ALL {
        let Some((_, tier)) = role_tiers.get(role.as_str()) else {
            continue;
        };
        let row = table.roles.get(role.as_str());
        if let Some(row) = row
            && row.codes().len() != RELATIONS.len()
        {
            problems.push(format!(
                "{place}.{}: {} codes, one per column expected ({})",
                role.as_str(),
                row.codes().len(),
                RELATIONS.len()
            ));
            continue;
        }
        for (index, relation) in RELATIONS.iter().enumerate() {
            let token_rule = file
                .tokens
                .get(role.as_str())
                .and_then(|relations| relations.get(*relation))
                .and_then(|name| parse_code(name));
            let expected = match row {
                Some(row) => {
                    let name = &row.codes()[index];
                    let Some(code) = parse_code(name) else {
                        problems.push(format!(
                            "{place}.{}[{relation}]: {name} is not a gRPC code",
                            role.as_str()
                        ));
                        continue;
                    };
                    if let Some(refused) = token_rule
                        && refused != code
                    {
                        problems.push(format!(
                            "{place}.{}[{relation}]: {name}, but [tokens] refuses this token with {}",
                            role.as_str(),
                            code_name(refused)
                        ));
                    }
                    code
                }
                None => match (token_rule, default) {
                    (Some(refused), _) => refused,
                    (None, Some(code)) => code,
                    (None, None) => {
                        problems.push(format!(
                            "{place}: no row for {} and no default",
                            role.as_str()
                        ));
                        continue;
                    }
                },
            };
            let tier_name = match tier {
                OrgTier::VillageCommunity => "village_community",
                OrgTier::StreetTown => "street_town",
                OrgTier::District => "district",
            };
            let Some(org_unit) = file
                .relation
                .get(*relation)
                .and_then(|units| units.get(tier_name))
            else {
                continue;
            };
            let at_own_tier = OrgUnitCode::parse(org_unit).is_ok_and(|code| code.tier() == *tier);
            cells.push(Cell {
                service: service.to_owned(),
                method: method.to_owned(),
                rpc,
                role,
                relation,
                org_unit: org_unit.clone(),
                at_own_tier,
                expected,
                why: row
                    .and_then(Row::why)
                    .or(table.why.as_deref())
                    .map(str::to_owned),
            });
        }
    }
}

// ---- The sandbox and its fixtures ----

const CLERK_A: &str = "matrix-setup-clerk-a";
const CLERK_B: &str = "matrix-setup-clerk-b";
const STREET_REVIEWER: &str = "matrix-setup-street";
/// Assigned to the visit case and never visits, so its investigation never completes.
const ABSENT_INVESTIGATOR: &str = "matrix-absent-investigator";
const STREET: &str = "990101001000";
const DISTRICT: &str = "990101000000";
/// The village of the payment fixture's case: of another street, so that no list of review's
/// cells (all of V1) shows it.
const PAYMENT_VILLAGE: &str = "990101002001";

/// The month payment's runs pay: this month, by payment's own (system) clock.
fn payment_period() -> String {
    use sunshine_platform::clock::Clock as _;
    sunshine_domain::Month::of(sunshine_platform::clock::SystemClock.today()).to_string()
}

fn case_officer(subject: &str, role: Role, org_unit: &str) -> pb::CaseOfficer {
    pb::CaseOfficer {
        subject: subject.into(),
        role: role.as_str().into(),
        org_unit_code: org_unit.into(),
    }
}

/// A household of V1 with an open dibao case.
#[derive(Debug, Clone)]
struct OpenedCase {
    household_id: String,
    member_ids: Vec<String>,
    head_national_id: String,
    case_id: String,
}

#[derive(Debug)]
struct Fixtures {
    /// The target: household and case at investigation, its limit extended once.
    target: OpenedCase,
    /// AssignInvestigators: at investigation.
    assign_case: String,
    /// RecordHomeVisit: every in-scope visitor cell assigned, plus one who never visits.
    visit_case: String,
    /// ReturnForMaterial: at verification before each cell.
    return_case: String,
    /// Withdraw: open before each cell.
    withdraw_case: String,
    /// Open cases to take over once a cell withdrew `withdraw_case`: one per cell expected to
    /// succeed, opened with the rest (a cell that succeeds unexpectedly gets a new one).
    spare_withdraw_cases: Vec<String>,
    /// AnswerObjection: one open objection per cell.
    objection_case: String,
    /// Payment's RPCs: a run of this month (version 2: its header and its one part of orders) paying the one entitlement there is.
    run: pb::RunResponse,
    /// The run's one case (a temporary-assistance case: no medical claim is for it).
    run_case: String,
    /// Medical claims: an approved serious-illness case and one claim assessed for it.
    medical_claim: pb::MedicalClaimAssessed,
    /// Recovery's RPCs: a claim (version 1) for a month paid after its benefit ended.
    claim: pb::RecoveryClaimResponse,
    /// The economic-status check's RPCs: a check of a V1 case whose every holder answered (its
    /// report issued).
    check: pb::CheckResponse,
}

#[derive(Debug)]
struct World {
    auth: TestAuth,
    intake: IntakeServiceClient<Channel>,
    review: ReviewServiceClient<Channel>,
    payment: PaymentServiceClient<Channel>,
    /// department-integration: the fixture is one record civil affairs pushed
    /// ([`integration_record`]).
    integration: DepartmentIntegrationServiceClient<Channel>,
    /// `ServiceInfoService` on intake's port and on review's.
    service_info: [ServiceInfoServiceClient<Channel>; 2],
    store: EventStore,
    /// The services' configuration (its log keys seal the accounts of boundary households).
    config: sunshine_platform::Config,
    today: time::Date,
    clerk_a: String,
    clerk_b: String,
    street: String,
    counter: u32,
    next_family: u32,
    /// People nobody registered (registrations and officials' relatives), one per cell.
    next_person: u32,
}

impl World {
    fn unique(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("matrix-{what}-{}", self.counter)
    }

    fn today(&self) -> Option<pb::Date> {
        Some(sunshine_proto::dates::from_date(self.today))
    }

    /// Registers households of V1 and applies for dibao for each; waits for their cases.
    async fn open_cases(&mut self, count: usize) -> anyhow::Result<Vec<OpenedCase>> {
        let mut opened = Vec::with_capacity(count);
        for _ in 0..count {
            self.next_family += 1;
            let people = family(self.next_family);
            let command = self.unique("register");
            let registered = self
                .intake
                .register_household(with_token(registration(&command, &people), &self.clerk_a)?)
                .await
                .context("registering a fixture household")?
                .into_inner();
            let command = self.unique("apply");
            let accepted = self
                .intake
                .submit_application(with_token(
                    dibao_application(
                        &command,
                        &registered.household_id,
                        &registered.member_ids[0],
                    ),
                    &self.clerk_a,
                )?)
                .await
                .context("applying for a fixture household")?
                .into_inner();
            opened.push(OpenedCase {
                household_id: registered.household_id,
                member_ids: registered.member_ids,
                head_national_id: people[0].id.clone(),
                case_id: accepted.case_id,
            });
        }
        for case in &opened {
            self.wait_for_case(&case.case_id, "opened at investigation", |found| {
                found.stage == "investigation"
            })
            .await?;
        }
        Ok(opened)
    }

    async fn case(&mut self, case_id: &str) -> anyhow::Result<pb::GetCaseResponse> {
        let request = pb::GetCaseRequest {
            case_id: case_id.into(),
        };
        Ok(self
            .review
            .get_case(with_token(request, &self.street)?)
            .await?
            .into_inner())
    }

    async fn version(&mut self, case_id: &str) -> anyhow::Result<u64> {
        Ok(self
            .case(case_id)
            .await
            .with_context(|| format!("reading fixture case {case_id}"))?
            .version)
    }

    async fn wait_for_case(
        &mut self,
        case_id: &str,
        what: &str,
        done: impl Fn(&pb::GetCaseResponse) -> bool,
    ) -> anyhow::Result<pb::GetCaseResponse> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(found) = self.case(case_id).await
                && done(&found)
            {
                return Ok(found);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "fixture case {case_id} never {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn assign(
        &mut self,
        case_id: &str,
        investigators: Vec<pb::CaseOfficer>,
    ) -> anyhow::Result<()> {
        let expected_version = self.version(case_id).await?;
        let command_id = self.unique("assign");
        self.review
            .assign_investigators(with_token(
                pb::AssignInvestigatorsRequest {
                    command_id,
                    case_id: case_id.into(),
                    expected_version,
                    investigators,
                },
                &self.street,
            )?)
            .await
            .context("assigning a fixture case's investigators")?;
        Ok(())
    }

    async fn visit(
        &mut self,
        case_id: &str,
        token: &str,
    ) -> anyhow::Result<pb::CaseCommandResponse> {
        let expected_version = self.version(case_id).await?;
        let command_id = self.unique("visit");
        let visited_on = self.today();
        Ok(self
            .review
            .record_home_visit(with_token(
                pb::RecordHomeVisitRequest {
                    command_id,
                    case_id: case_id.into(),
                    expected_version,
                    visited_on,
                    findings: "家中有卧床老人".into(),
                },
                token,
            )?)
            .await
            .context("recording a fixture visit")?
            .into_inner())
    }

    /// The setup clerks (the case's investigators) visit until the case moves on to
    /// verification; a rule that remembers an earlier round's visits may move it on sooner.
    async fn visit_by_both_clerks(&mut self, case_id: &str) -> anyhow::Result<()> {
        for token in [self.clerk_a.clone(), self.clerk_b.clone()] {
            let after = self.visit(case_id, &token).await?;
            if after.stage == "verification" {
                return Ok(());
            }
        }
        anyhow::bail!("fixture case {case_id} is not at verification after both visits")
    }

    async fn walk_to_verification(&mut self, case_id: &str) -> anyhow::Result<()> {
        self.assign(
            case_id,
            vec![
                case_officer(CLERK_A, Role::VillageClerk, VILLAGE),
                case_officer(CLERK_B, Role::VillageClerk, VILLAGE),
            ],
        )
        .await?;
        self.visit_by_both_clerks(case_id).await
    }

    /// Appends an event to another service's stream, as that service would.
    async fn append_as(
        &self,
        service_stream: &str,
        case_id: &str,
        event: &impl TypedEvent,
    ) -> anyhow::Result<()> {
        let stream = StreamId::parse(&format!("{service_stream}-{}", uuid::Uuid::now_v7()))?;
        let metadata = EventMetadata {
            actor: Actor {
                subject: "matrix-boundary".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            },
            ..EventMetadata::default()
        };
        self.store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![NewEvent::typed(case_id, event)],
            )
            .await?;
        Ok(())
    }

    /// Investigation, verification (answered as department-integration would), opinion and
    /// publicity; then one objection (received as disclosure would) per id.
    async fn walk_to_objections(
        &mut self,
        case_id: &str,
        objections: &[String],
    ) -> anyhow::Result<()> {
        self.walk_to_verification(case_id).await?;
        let expected_version = self.version(case_id).await?;
        let command_id = self.unique("verify");
        self.review
            .request_verification(with_token(
                pb::RequestVerificationRequest {
                    command_id,
                    case_id: case_id.into(),
                    expected_version,
                    department_codes: vec!["civil_affairs".into()],
                },
                &self.street,
            )?)
            .await
            .context("requesting the fixture's verification")?;
        let answer = pb::VerificationAnswered {
            case_id: case_id.into(),
            department_code: "civil_affairs".into(),
            ..Default::default()
        };
        self.append_as("departments-verification", case_id, &answer)
            .await?;
        let at_opinion = self
            .wait_for_case(case_id, "reached the opinion", |found| {
                found.stage == "preliminary_opinion"
            })
            .await?;
        let command_id = self.unique("opinion");
        let opinion = self
            .review
            .record_opinion(with_token(
                pb::RecordOpinionRequest {
                    command_id,
                    case_id: case_id.into(),
                    expected_version: at_opinion.version,
                    recommend_approval: true,
                    proposed_amount: None,
                    opinion: "符合农村低保条件".into(),
                    // Only used if the engine disagrees: the fixture needs publicity, not a verdict.
                    departure_justification: "access-matrix fixture".into(),
                },
                &self.street,
            )?)
            .await
            .context("recording the fixture's opinion")?
            .into_inner();
        let command_id = self.unique("publicity");
        self.review
            .start_publicity(with_token(
                pb::StartPublicityRequest {
                    command_id,
                    case_id: case_id.into(),
                    expected_version: opinion.version,
                },
                &self.street,
            )?)
            .await
            .context("starting the fixture's publicity")?;
        for objection_id in objections {
            let objection = pb::ObjectionReceived {
                case_id: case_id.into(),
                objection_id: objection_id.clone(),
                received_on: self.today(),
                sealed_content: Vec::new(),
            };
            self.append_as("disclosure-objection", case_id, &objection)
                .await?;
        }
        let wanted = objections.len();
        self.wait_for_case(case_id, "took every objection in", |found| {
            found.open_objections.len() == wanted
        })
        .await?;
        Ok(())
    }

    async fn set_up(&mut self, cells: &[Cell]) -> anyhow::Result<Fixtures> {
        let withdrawals = cells
            .iter()
            .filter(|cell| cell.rpc == Rpc::Withdraw && cell.expected == Code::Ok)
            .count();
        let mut opened = self.open_cases(7 + withdrawals).await?.into_iter();
        let mut next = || opened.next().context("the fixture cases");
        let target = next()?;
        let assign_case = next()?.case_id;
        let visit_case = next()?.case_id;
        let return_case = next()?.case_id;
        let withdraw_case = next()?.case_id;
        let objection_case = next()?.case_id;
        let check_case = next()?;
        let spare_withdraw_cases = opened.map(|case| case.case_id).collect();

        // The target's limit is extended once, so that every further extension is refused.
        let expected_version = self.version(&target.case_id).await?;
        let command_id = self.unique("extend");
        self.review
            .extend_deadline(with_token(
                pb::ExtendDeadlineRequest {
                    command_id,
                    case_id: target.case_id.clone(),
                    expected_version,
                    reason: "核对结果未返回".into(),
                },
                &self.street,
            )?)
            .await
            .context("extending the target's limit")?;

        // Every visitor cell that could be in scope is an investigator of the visit case.
        let mut investigators: Vec<pb::CaseOfficer> = cells
            .iter()
            .filter(|cell| {
                cell.rpc == Rpc::RecordHomeVisit
                    && matches!(cell.role, Role::VillageClerk | Role::StreetReviewer)
                    && cell.at_own_tier
                    && cell.covers_target()
            })
            .map(|cell| case_officer(&cell.subject(), cell.role, &cell.org_unit))
            .collect();
        investigators.push(case_officer(
            ABSENT_INVESTIGATOR,
            Role::VillageClerk,
            VILLAGE,
        ));
        self.assign(&visit_case, investigators).await?;

        self.walk_to_verification(&return_case).await?;

        let objections: Vec<String> = cells
            .iter()
            .filter(|cell| cell.rpc == Rpc::AnswerObjection)
            .map(objection_id)
            .collect();
        self.walk_to_objections(&objection_case, &objections)
            .await?;
        let (run, run_case) = self.payment_run().await?;
        let medical_claim = self.medical_claim().await?;
        let claim = self.recovery_claim().await?;
        self.push_integration_record().await?;
        let check = self.answered_check(&check_case).await?;
        self.closed_monitoring_warning().await?;

        Ok(Fixtures {
            target,
            assign_case,
            visit_case,
            return_case,
            withdraw_case,
            spare_withdraw_cases,
            objection_case,
            run,
            run_case,
            medical_claim,
            claim,
            check,
        })
    }

    /// A monthly benefit of this month heard from review (at the boundary), paid by a run of
    /// its own (created, approved, exported and settled by the bank), then ended from this
    /// month: payment's recovery watch opens a claim for the month paid. Made after the
    /// fixture run, so that every entitlement of the month is in a run still.
    async fn recovery_claim(&mut self) -> anyhow::Result<pb::RecoveryClaimResponse> {
        use sunshine_payment::bank_files::Format;
        use sunshine_tests::bank::{batch_lines, result_file};
        let case_id = uuid::Uuid::now_v7().to_string();
        let opened = pb::CaseOpened {
            case_id: case_id.clone(),
            application_id: format!("matrix-application-{case_id}"),
            household_id: format!("matrix-household-{case_id}"),
            program_code: "dibao".into(),
            workflow: "means_tested_review".into(),
            accepted_org_unit_code: PAYMENT_VILLAGE.into(),
            hukou_org_unit_code: PAYMENT_VILLAGE.into(),
            ..Default::default()
        };
        let approved = pb::CaseApproved {
            case_id: case_id.clone(),
            program_code: "dibao".into(),
            monthly_amount: Some(pb::Money { fen: 50_000 }),
            start_month: payment_period(),
            reasons: "符合条件".into(),
            ..Default::default()
        };
        let stream = StreamId::new("review", "case", &case_id)?;
        // The household, registered with its payment account as intake would have.
        sunshine_tests::accounts::register_if_new(
            &self.store,
            &self.config,
            &format!("matrix-household-{case_id}"),
        )
        .await?;
        let metadata = EventMetadata {
            actor: Actor {
                subject: "matrix-boundary".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            },
            ..EventMetadata::default()
        };
        self.store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![
                    NewEvent::typed(case_id.as_str(), &opened),
                    NewEvent::typed(case_id.as_str(), &approved),
                ],
            )
            .await?;
        let officer = self
            .auth
            .token_for("matrix-setup-finance", Role::FinanceOfficer, DISTRICT);
        let approver = self.auth.token_for(
            "matrix-setup-finance-approver",
            Role::FinanceApprover,
            DISTRICT,
        );
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let run = loop {
            let request = pb::CreateRunRequest {
                command_id: "matrix-setup-recovery-run".into(),
                period: payment_period(),
            };
            match self
                .payment
                .create_run(with_token(request, &officer)?)
                .await
            {
                Ok(run) => break run.into_inner(),
                // Nothing new due until payment's projection has heard the approval.
                Err(status) if status.code() == Code::AlreadyExists => {}
                Err(status) => anyhow::bail!("creating the recovery fixture's run: {status:?}"),
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "payment never heard the recovery fixture's approval"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let control = run.control.clone().unwrap_or_default();
        self.payment
            .approve_run(with_token(
                pb::ApproveRunRequest {
                    command_id: "matrix-setup-recovery-approve".into(),
                    run_id: run.run_id.clone(),
                    expected_version: run.version,
                    control_count: control.count,
                    control_total: control.total,
                },
                &approver,
            )?)
            .await?;
        let batch = sunshine_tests::bank::collect(
            self.payment
                .export_bank_file(with_token(
                    pb::ExportBankFileRequest {
                        run_id: run.run_id.clone(),
                        format: pb::BankFileFormat::CsvUtf8.into(),
                    },
                    &officer,
                )?)
                .await?,
        )
        .await?;
        self.payment
            .import_bank_result(with_token(
                pb::ImportBankResultRequest {
                    command_id: "matrix-setup-recovery-result".into(),
                    run_id: run.run_id.clone(),
                    file: result_file(Format::CsvUtf8, &batch_lines(&batch.file)?)?,
                },
                &officer,
            )?)
            .await?;
        let terminated = pb::BenefitTerminated {
            case_id: case_id.clone(),
            effective_month: payment_period(),
            cause: "member died".into(),
            policy: None,
        };
        self.store
            .append(
                &stream,
                ExpectedVersion::Exact(2),
                &metadata,
                vec![NewEvent::typed(case_id.as_str(), &terminated)],
            )
            .await?;
        loop {
            let claims = self
                .payment
                .list_recovery_claims(with_token(
                    pb::ListRecoveryClaimsRequest { page: None },
                    &officer,
                )?)
                .await?
                .into_inner()
                .claims;
            if let Some(claim) = claims.into_iter().find(|claim| {
                claim
                    .orders
                    .first()
                    .is_some_and(|order| order.entitlement_id == case_id)
            }) {
                return Ok(claim);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "payment never opened the recovery fixture's claim"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // ---- department-integration ----

    /// Civil affairs pushes the fixture record once: every cell's push and import of it after
    /// that stores nothing (UNCHANGED), so no cell changes what the next finds.
    async fn push_integration_record(&mut self) -> anyhow::Result<()> {
        let token = self.auth.token(Role::Department, DISTRICT);
        let request = pb::PushAssistanceRecordsRequest {
            command_id: "matrix-integration-fixture".into(),
            records: vec![integration_record()],
        };
        let pushed = self
            .integration
            .push_assistance_records(with_token(request, &token)?)
            .await
            .context("pushing the department-integration fixture")?
            .into_inner();
        anyhow::ensure!(
            pushed.stored == 1,
            "the fixture record was not stored: {pushed:?}"
        );
        Ok(())
    }

    // ---- department-integration: the monitoring platform ----

    /// The fixture warning imported once and closed: every cell's import of it after that
    /// receives nothing (unchanged), every cell's closing of it is FAILED_PRECONDITION.
    async fn closed_monitoring_warning(&mut self) -> anyhow::Result<()> {
        let token = self
            .auth
            .token_for("matrix-setup-center", Role::CenterReviewer, DISTRICT);
        let request = pb::ImportMonitoringWarningsRequest {
            command_id: "matrix-warning-fixture".into(),
            warnings: vec![monitoring_warning()],
        };
        let imported = self
            .integration
            .import_monitoring_warnings(with_token(request, &token)?)
            .await
            .context("importing the fixture warning")?
            .into_inner();
        anyhow::ensure!(imported.received == 1, "the fixture warning: {imported:?}");
        let request = pb::CloseMonitoringWarningRequest {
            command_id: "matrix-warning-fixture-closed".into(),
            warning_id: monitoring_warning().warning_id,
            outcome: "verified".into(),
            note: "the access matrix's fixture".into(),
        };
        self.integration
            .close_monitoring_warning(with_token(request, &token)?)
            .await
            .context("closing the fixture warning")?;
        Ok(())
    }

    // ---- department-integration: the economic-status check ----

    /// A V1 case walked to verification, its household's consent recorded, the check opened,
    /// and every holder's answer: the report is issued, so no cell's answer or re-check at a
    /// stale version changes it.
    async fn answered_check(&mut self, case: &OpenedCase) -> anyhow::Result<pb::CheckResponse> {
        self.walk_to_verification(&case.case_id).await?;
        let expected_version = self.version(&case.case_id).await?;
        let command_id = self.unique("verify");
        self.review
            .request_verification(with_token(
                pb::RequestVerificationRequest {
                    command_id,
                    case_id: case.case_id.clone(),
                    expected_version,
                    department_codes: vec!["public_security".into()],
                },
                &self.street,
            )?)
            .await
            .context("requesting the check fixture's verification")?;
        let command_id = self.unique("consent");
        self.integration
            .record_consent(with_token(
                check_consent(&command_id, &case.household_id),
                &self.street,
            )?)
            .await
            .context("recording the check fixture's consent")?;
        let command_id = self.unique("open-check");
        let check = self
            .integration
            .open_check(with_token(
                pb::OpenCheckRequest {
                    command_id,
                    case_id: case.case_id.clone(),
                },
                &self.street,
            )?)
            .await
            .context("opening the check fixture")?
            .into_inner();
        let mut last = check.clone();
        for request in &check.requests {
            let token = holder_token(
                &self.auth,
                &request.department_code,
                "matrix-setup",
                DISTRICT,
            );
            let command_id = self.unique("answer");
            last = self
                .integration
                .answer_check(with_token(
                    pb::AnswerCheckRequest {
                        command_id,
                        check_id: check.check_id.clone(),
                        answers: holder_answers(request)?,
                    },
                    &token,
                )?)
                .await
                .context("answering the check fixture")?
                .into_inner();
        }
        anyhow::ensure!(
            last.report_issued,
            "the fixture check has no report: {last:?}"
        );
        Ok(last)
    }

    /// An assist-first grant heard from review (appended at the boundary, on a case of a
    /// village none of review's cells names), and this month's payment run paying it, created
    /// once payment's projection has heard it.
    async fn payment_run(&mut self) -> anyhow::Result<(pb::RunResponse, String)> {
        let case_id = uuid::Uuid::now_v7().to_string();
        let opened = pb::CaseOpened {
            case_id: case_id.clone(),
            application_id: format!("matrix-application-{case_id}"),
            household_id: format!("matrix-household-{case_id}"),
            program_code: "temporary".into(),
            workflow: "emergency_evaluation".into(),
            accepted_org_unit_code: PAYMENT_VILLAGE.into(),
            hukou_org_unit_code: PAYMENT_VILLAGE.into(),
            emergency: true,
            ..Default::default()
        };
        let granted = pb::AssistFirstGranted {
            case_id: case_id.clone(),
            amount: Some(pb::Money { fen: 120_000 }),
            cap: Some(pb::Money { fen: 200_000 }),
            reason: "火灾".into(),
            ..Default::default()
        };
        let stream = StreamId::new("review", "case", &case_id)?;
        // The household, registered with its payment account as intake would have.
        sunshine_tests::accounts::register_if_new(
            &self.store,
            &self.config,
            &format!("matrix-household-{case_id}"),
        )
        .await?;
        let metadata = EventMetadata {
            actor: Actor {
                subject: "matrix-boundary".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            },
            ..EventMetadata::default()
        };
        self.store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![
                    NewEvent::typed(case_id.as_str(), &opened),
                    NewEvent::typed(case_id.as_str(), &granted),
                ],
            )
            .await?;
        let officer = self
            .auth
            .token_for("matrix-setup-finance", Role::FinanceOfficer, DISTRICT);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let request = pb::CreateRunRequest {
                command_id: "matrix-setup-run".into(),
                period: payment_period(),
            };
            match self
                .payment
                .create_run(with_token(request, &officer)?)
                .await
            {
                Ok(run) => return Ok((run.into_inner(), case_id)),
                // Nothing due until payment's projection has heard the grant.
                Err(status) if status.code() == Code::FailedPrecondition => {}
                Err(status) => anyhow::bail!("creating the fixture run: {status:?}"),
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "payment never heard the fixture's grant"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A serious-illness case approved (paying nothing monthly) heard from review, in the
    /// payment fixture's village, and one claim for it submitted by a center reviewer once
    /// payment's projection has heard the case.
    async fn medical_claim(&mut self) -> anyhow::Result<pb::MedicalClaimAssessed> {
        let case_id = uuid::Uuid::now_v7().to_string();
        let opened = pb::CaseOpened {
            case_id: case_id.clone(),
            application_id: format!("matrix-application-{case_id}"),
            household_id: format!("matrix-household-{case_id}"),
            program_code: "medical_serious_illness".into(),
            workflow: "center_review".into(),
            accepted_org_unit_code: PAYMENT_VILLAGE.into(),
            hukou_org_unit_code: PAYMENT_VILLAGE.into(),
            ..Default::default()
        };
        let approved = pb::CaseApproved {
            case_id: case_id.clone(),
            program_code: "medical_serious_illness".into(),
            monthly_amount: Some(pb::Money { fen: 0 }),
            start_month: payment_period(),
            reasons: "符合条件".into(),
            ..Default::default()
        };
        let metadata = EventMetadata {
            actor: Actor {
                subject: "matrix-boundary".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            },
            ..EventMetadata::default()
        };
        // The household, registered with its payment account as intake would have.
        sunshine_tests::accounts::register_if_new(
            &self.store,
            &self.config,
            &format!("matrix-household-{case_id}"),
        )
        .await?;
        self.store
            .append(
                &StreamId::new("review", "case", &case_id)?,
                ExpectedVersion::NoStream,
                &metadata,
                vec![
                    NewEvent::typed(case_id.as_str(), &opened),
                    NewEvent::typed(case_id.as_str(), &approved),
                ],
            )
            .await?;
        let center = self
            .auth
            .token_for("matrix-setup-center", Role::CenterReviewer, DISTRICT);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let request = pb::SubmitMedicalClaimRequest {
                command_id: "matrix-setup-claim".into(),
                case_id: case_id.clone(),
                patient_member_id: "matrix-patient".into(),
                out_of_pocket: Some(pb::Money { fen: 1_000_000 }),
                settlement_date: Some(pb::Date {
                    year: self.today.year(),
                    month: i32::from(u8::from(self.today.month())),
                    day: i32::from(self.today.day()),
                }),
                settlement_reference: "matrix-settlement".into(),
            };
            match self
                .payment
                .submit_medical_claim(with_token(request, &center)?)
                .await
            {
                Ok(claim) => {
                    return claim
                        .into_inner()
                        .claim
                        .ok_or_else(|| anyhow::anyhow!("a claim without its assessment"));
                }
                // Not found (or not approved) until payment's projection has heard the case.
                Err(status)
                    if matches!(status.code(), Code::NotFound | Code::FailedPrecondition) => {}
                Err(status) => anyhow::bail!("submitting the fixture claim: {status:?}"),
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "payment never heard the fixture's medical case"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Puts a cell's own fixture into the shape its table describes.
    async fn prepare(&mut self, fixtures: &mut Fixtures, cell: &Cell) -> anyhow::Result<()> {
        match cell.rpc {
            Rpc::ReturnForMaterial => {
                let case_id = fixtures.return_case.clone();
                let found = self.case(&case_id).await?;
                if found.stage == "investigation" {
                    self.visit_by_both_clerks(&case_id).await?;
                } else {
                    anyhow::ensure!(
                        found.stage == "verification" && found.status == "open",
                        "the return fixture is {} at {}",
                        found.status,
                        found.stage
                    );
                }
            }
            Rpc::Withdraw => {
                let found = self.case(&fixtures.withdraw_case).await?;
                if found.status != "open" {
                    fixtures.withdraw_case = match fixtures.spare_withdraw_cases.pop() {
                        Some(spare) => spare,
                        None => {
                            let mut opened = self.open_cases(1).await?;
                            opened.pop().context("a new withdraw fixture")?.case_id
                        }
                    };
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Calls one cell: `Err` of the inner result is the RPC's status.
    async fn probe(
        &mut self,
        fixtures: &mut Fixtures,
        cell: &Cell,
    ) -> anyhow::Result<Result<(), Status>> {
        self.prepare(fixtures, cell).await?;
        let token = self
            .auth
            .token_for(&cell.subject(), cell.role, &cell.org_unit);
        let command_id = cell.command_id();
        let target = fixtures.target.clone();
        // A version the target household had before its application: stale for everyone.
        let stale_household_version = 1;
        let answer = match cell.rpc {
            Rpc::RegisterHousehold => {
                self.next_person += 1;
                let person = Person {
                    name: "陈新民",
                    id: national_id("19720202", 100 + self.next_person),
                    birth: (1972, 2, 2),
                    relation: pb::Relation::Head,
                };
                let request = registration(&command_id, &[person]);
                ok(self
                    .intake
                    .register_household(with_token(request, &token)?)
                    .await)
            }
            Rpc::RecordCircumstanceChange => {
                let request = pb::RecordCircumstanceChangeRequest {
                    command_id,
                    household_id: target.household_id.clone(),
                    expected_version: stale_household_version,
                    incomes: vec![pb::MemberIncome {
                        member_id: target.member_ids[0].clone(),
                        monthly_income: vec![pb::IncomeItem {
                            kind: "wages".into(),
                            monthly_amount: Some(pb::Money { fen: 20_000 }),
                        }],
                    }],
                    assets: Some(pb::Assets {
                        financial_assets: Some(pb::Money { fen: 500_000 }),
                        ..Default::default()
                    }),
                    reason: "工资下调".into(),
                };
                ok(self
                    .intake
                    .record_circumstance_change(with_token(request, &token)?)
                    .await)
            }
            Rpc::RecordDeath => {
                let request = pb::RecordDeathRequest {
                    command_id,
                    household_id: target.household_id.clone(),
                    expected_version: stale_household_version,
                    member_id: target.member_ids[3].clone(),
                    date_of_death: date(2026, 9, 1),
                    reason: "死亡证明".into(),
                };
                ok(self.intake.record_death(with_token(request, &token)?).await)
            }
            Rpc::CorrectDeathRecord => {
                let request = pb::CorrectDeathRecordRequest {
                    command_id,
                    household_id: target.household_id.clone(),
                    expected_version: stale_household_version,
                    member_id: target.member_ids[3].clone(),
                    reason: "死亡登记有误，本人健在".into(),
                };
                ok(self
                    .intake
                    .correct_death_record(with_token(request, &token)?)
                    .await)
            }
            Rpc::RecordMove => {
                let request = pb::RecordMoveRequest {
                    command_id,
                    household_id: target.household_id.clone(),
                    expected_version: stale_household_version,
                    new_hukou_org_unit_code: VILLAGE.into(),
                    new_address: "示例区东华街道幸福里5号".into(),
                    reason: "村内搬迁".into(),
                };
                ok(self.intake.record_move(with_token(request, &token)?).await)
            }
            // household composition
            Rpc::AddHouseholdMember => {
                let person = Person {
                    name: "赵新娘",
                    id: national_id("19960606", 1),
                    birth: (1996, 6, 6),
                    relation: pb::Relation::Other,
                };
                let request = pb::AddHouseholdMemberRequest {
                    command_id,
                    household_id: target.household_id.clone(),
                    expected_version: stale_household_version,
                    member: Some(sunshine_tests::households::member(&person, 0)),
                    reason: pb::JoinReason::Marriage as i32,
                    note: String::new(),
                };
                ok(self
                    .intake
                    .add_household_member(with_token(request, &token)?)
                    .await)
            }
            Rpc::RemoveHouseholdMember => {
                let request = pb::RemoveHouseholdMemberRequest {
                    command_id,
                    household_id: target.household_id.clone(),
                    expected_version: stale_household_version,
                    member_id: target.member_ids[2].clone(),
                    reason: pb::LeaveReason::MovedOut as i32,
                    effective_date: date(2026, 9, 1),
                    note: String::new(),
                };
                ok(self
                    .intake
                    .remove_household_member(with_token(request, &token)?)
                    .await)
            }
            Rpc::SubmitApplication => {
                let request =
                    dibao_application(&command_id, &target.household_id, &target.member_ids[0]);
                ok(self
                    .intake
                    .submit_application(with_token(request, &token)?)
                    .await)
            }
            Rpc::RegisterOfficialRelative => {
                self.next_person += 1;
                let request = pb::RegisterOfficialRelativeRequest {
                    command_id,
                    official_subject: format!("cadre-{}", self.next_person),
                    official_name: "赵德明".into(),
                    official_position: "村委会主任".into(),
                    official_org_unit_code: VILLAGE.into(),
                    relative_national_id: national_id("19800303", 100 + self.next_person),
                    relation: "spouse".into(),
                };
                ok(self
                    .intake
                    .register_official_relative(with_token(request, &token)?)
                    .await)
            }
            Rpc::GetHousehold => {
                let request = pb::GetHouseholdRequest {
                    household_id: target.household_id.clone(),
                    reveal_personal_data: false,
                    purpose: String::new(),
                    case_id: String::new(),
                    reveal_purpose: pb::RevealPurpose::Unspecified as i32,
                };
                ok(self
                    .intake
                    .get_household(with_token(request, &token)?)
                    .await)
            }
            Rpc::FindHousehold => {
                let request = pb::FindHouseholdRequest {
                    national_id: target.head_national_id.clone(),
                };
                ok(self
                    .intake
                    .find_household(with_token(request, &token)?)
                    .await)
            }
            Rpc::ListApplications => {
                let request = pb::ListApplicationsRequest {
                    org_unit_code: VILLAGE.into(),
                    ..Default::default()
                };
                ok(self
                    .intake
                    .list_applications(with_token(request, &token)?)
                    .await)
            }
            Rpc::GetCase => {
                let request = pb::GetCaseRequest {
                    case_id: target.case_id.clone(),
                };
                ok(self.review.get_case(with_token(request, &token)?).await)
            }
            Rpc::AssignInvestigators => {
                let case_id = fixtures.assign_case.clone();
                let request = pb::AssignInvestigatorsRequest {
                    command_id,
                    expected_version: self.version(&case_id).await?,
                    case_id,
                    investigators: vec![
                        case_officer(CLERK_A, Role::VillageClerk, VILLAGE),
                        case_officer(CLERK_B, Role::VillageClerk, VILLAGE),
                    ],
                };
                ok(self
                    .review
                    .assign_investigators(with_token(request, &token)?)
                    .await)
            }
            Rpc::RecordHomeVisit => {
                let case_id = fixtures.visit_case.clone();
                let request = pb::RecordHomeVisitRequest {
                    command_id,
                    expected_version: self.version(&case_id).await?,
                    case_id,
                    visited_on: self.today(),
                    findings: "家中有卧床老人".into(),
                };
                ok(self
                    .review
                    .record_home_visit(with_token(request, &token)?)
                    .await)
            }
            Rpc::RequestVerification => {
                let request = pb::RequestVerificationRequest {
                    command_id,
                    expected_version: self.version(&target.case_id).await?,
                    case_id: target.case_id.clone(),
                    department_codes: vec!["civil_affairs".into()],
                };
                ok(self
                    .review
                    .request_verification(with_token(request, &token)?)
                    .await)
            }
            Rpc::RecordOpinion => {
                let request = pb::RecordOpinionRequest {
                    command_id,
                    expected_version: self.version(&target.case_id).await?,
                    case_id: target.case_id.clone(),
                    recommend_approval: true,
                    proposed_amount: None,
                    opinion: "符合农村低保条件".into(),
                    departure_justification: String::new(),
                };
                ok(self
                    .review
                    .record_opinion(with_token(request, &token)?)
                    .await)
            }
            Rpc::StartPublicity => {
                let request = pb::StartPublicityRequest {
                    command_id,
                    expected_version: self.version(&target.case_id).await?,
                    case_id: target.case_id.clone(),
                };
                ok(self
                    .review
                    .start_publicity(with_token(request, &token)?)
                    .await)
            }
            Rpc::AnswerObjection => {
                let case_id = fixtures.objection_case.clone();
                let request = pb::AnswerObjectionRequest {
                    command_id,
                    expected_version: self.version(&case_id).await?,
                    case_id,
                    objection_id: objection_id(cell),
                    upheld: false,
                    answer: "复核收入属实".into(),
                };
                ok(self
                    .review
                    .answer_objection(with_token(request, &token)?)
                    .await)
            }
            Rpc::GrantAssistFirst => {
                let request = pb::GrantAssistFirstRequest {
                    command_id,
                    expected_version: self.version(&target.case_id).await?,
                    case_id: target.case_id.clone(),
                    amount: Some(pb::Money { fen: 10_000 }),
                    reason: "火灾".into(),
                };
                ok(self
                    .review
                    .grant_assist_first(with_token(request, &token)?)
                    .await)
            }
            Rpc::Decide => {
                let request = pb::DecideRequest {
                    command_id,
                    expected_version: self.version(&target.case_id).await?,
                    case_id: target.case_id.clone(),
                    approve: false,
                    monthly_amount: None,
                    start_month: String::new(),
                    reasons: vec!["家庭收入超过标准".into()],
                    departure_justification: "入户调查发现隐瞒收入".into(),
                    care_institution_code: String::new(),
                };
                ok(self.review.decide(with_token(request, &token)?).await)
            }
            Rpc::ListOverdueCases => {
                let request = pb::ListOverdueCasesRequest {
                    org_unit_code: VILLAGE.into(),
                    page: None,
                };
                ok(self
                    .review
                    .list_overdue_cases(with_token(request, &token)?)
                    .await)
            }
            Rpc::ReturnForMaterial => {
                let case_id = fixtures.return_case.clone();
                let request = pb::ReturnForMaterialRequest {
                    command_id,
                    expected_version: self.version(&case_id).await?,
                    case_id,
                    missing_materials: vec!["income_statement".into()],
                    reason: "收入证明不全".into(),
                };
                ok(self
                    .review
                    .return_for_material(with_token(request, &token)?)
                    .await)
            }
            Rpc::Withdraw => {
                let case_id = fixtures.withdraw_case.clone();
                let request = pb::WithdrawRequest {
                    command_id,
                    expected_version: self.version(&case_id).await?,
                    case_id,
                    reason: "申请人撤回".into(),
                };
                ok(self.review.withdraw(with_token(request, &token)?).await)
            }
            Rpc::ExtendDeadline => {
                let request = pb::ExtendDeadlineRequest {
                    command_id,
                    expected_version: self.version(&target.case_id).await?,
                    case_id: target.case_id.clone(),
                    reason: "核对结果未返回".into(),
                };
                ok(self
                    .review
                    .extend_deadline(with_token(request, &token)?)
                    .await)
            }
            Rpc::ListWorkQueue => {
                let request = pb::ListWorkQueueRequest {
                    org_unit_code: VILLAGE.into(),
                    page: None,
                };
                ok(self
                    .review
                    .list_work_queue(with_token(request, &token)?)
                    .await)
            }
            Rpc::NotifyRefusal => {
                let request = pb::NotifyRefusalRequest {
                    command_id,
                    expected_version: self.version(&target.case_id).await?,
                    case_id: target.case_id.clone(),
                    channel: "in_person".into(),
                };
                ok(self
                    .review
                    .notify_refusal(with_token(request, &token)?)
                    .await)
            }
            Rpc::DrawHomeVisitSample => {
                // A period in which no case was received: nothing is drawn, nothing written.
                let request = pb::DrawHomeVisitSampleRequest {
                    command_id,
                    org_unit_code: VILLAGE.into(),
                    received_from: date(2000, 1, 3),
                    received_to: date(2000, 1, 7),
                };
                ok(self
                    .review
                    .draw_home_visit_sample(with_token(request, &token)?)
                    .await)
            }
            Rpc::CreateRun => {
                let request = pb::CreateRunRequest {
                    command_id,
                    period: payment_period(),
                };
                ok(self.payment.create_run(with_token(request, &token)?).await)
            }
            Rpc::ApproveRun => {
                let run = &fixtures.run;
                let control = run.control.clone().unwrap_or_default();
                let request = pb::ApproveRunRequest {
                    command_id,
                    run_id: run.run_id.clone(),
                    expected_version: 7,
                    control_count: control.count,
                    control_total: control.total,
                };
                ok(self.payment.approve_run(with_token(request, &token)?).await)
            }
            Rpc::GetRun => {
                let request = pb::GetRunRequest {
                    run_id: fixtures.run.run_id.clone(),
                };
                ok(self.payment.get_run(with_token(request, &token)?).await)
            }
            Rpc::ListRunOrders => {
                let request = pb::ListRunOrdersRequest {
                    run_id: fixtures.run.run_id.clone(),
                    page: None,
                };
                ok(self
                    .payment
                    .list_run_orders(with_token(request, &token)?)
                    .await)
            }
            Rpc::ExportBankFile => {
                let request = pb::ExportBankFileRequest {
                    run_id: fixtures.run.run_id.clone(),
                    format: pb::BankFileFormat::CsvUtf8.into(),
                };
                // The whole stream read: a refusal comes before its first message.
                match self
                    .payment
                    .export_bank_file(with_token(request, &token)?)
                    .await
                {
                    Ok(stream) => sunshine_tests::bank::collect(stream).await.map(|_| ()),
                    Err(status) => Err(status),
                }
            }
            Rpc::CreateRepayRun => {
                let request = pb::CreateRepayRunRequest {
                    command_id,
                    period: payment_period(),
                };
                ok(self
                    .payment
                    .create_repay_run(with_token(request, &token)?)
                    .await)
            }
            Rpc::ImportBankResult => {
                let request = pb::ImportBankResultRequest {
                    command_id,
                    run_id: fixtures.run.run_id.clone(),
                    file: b"T,0,0\r\n".to_vec(),
                };
                ok(self
                    .payment
                    .import_bank_result(with_token(request, &token)?)
                    .await)
            }
            Rpc::GetTrialBalance => ok(self
                .payment
                .get_trial_balance(with_token(pb::GetTrialBalanceRequest {}, &token)?)
                .await),
            Rpc::GetFundBalances => ok(self
                .payment
                .get_fund_balances(with_token(pb::GetFundBalancesRequest {}, &token)?)
                .await),
            Rpc::ImportBankReturns => {
                let request = pb::ImportBankReturnsRequest {
                    command_id,
                    run_id: fixtures.run.run_id.clone(),
                    file: b"T,0,0\r\n".to_vec(),
                };
                ok(self
                    .payment
                    .import_bank_returns(with_token(request, &token)?)
                    .await)
            }
            Rpc::CloseReconciliation => {
                let request = pb::CloseReconciliationRequest {
                    command_id,
                    run_id: fixtures.run.run_id.clone(),
                    expected_version: 7,
                    paid_count: 0,
                    paid_total: Some(pb::Money { fen: 0 }),
                    unpaid_count: 0,
                    unpaid_total: Some(pb::Money { fen: 0 }),
                };
                ok(self
                    .payment
                    .close_reconciliation(with_token(request, &token)?)
                    .await)
            }
            Rpc::SubmitMedicalClaim => {
                let claim = &fixtures.medical_claim;
                let request = pb::SubmitMedicalClaimRequest {
                    command_id,
                    case_id: fixtures.run_case.clone(),
                    patient_member_id: claim.patient_member_id.clone(),
                    out_of_pocket: Some(pb::Money { fen: 100_000 }),
                    settlement_date: claim.settlement_date,
                    settlement_reference: claim.settlement_reference.clone(),
                };
                ok(self
                    .payment
                    .submit_medical_claim(with_token(request, &token)?)
                    .await)
            }
            Rpc::GetMedicalClaim => {
                let request = pb::GetMedicalClaimRequest {
                    claim_id: fixtures.medical_claim.claim_id.clone(),
                };
                ok(self
                    .payment
                    .get_medical_claim(with_token(request, &token)?)
                    .await)
            }
            Rpc::ListMedicalClaims => {
                let request = pb::ListMedicalClaimsRequest {
                    case_id: fixtures.medical_claim.case_id.clone(),
                    page: None,
                };
                ok(self
                    .payment
                    .list_medical_claims(with_token(request, &token)?)
                    .await)
            }
            Rpc::ListRecoveryClaims => ok(self
                .payment
                .list_recovery_claims(with_token(
                    pb::ListRecoveryClaimsRequest { page: None },
                    &token,
                )?)
                .await),
            Rpc::ListHouseholdPayments => {
                let household_id = fixtures
                    .claim
                    .orders
                    .first()
                    .map(|order| order.household_id.clone())
                    .unwrap_or_default();
                let request = pb::ListHouseholdPaymentsRequest {
                    household_id,
                    page: None,
                };
                ok(self
                    .payment
                    .list_household_payments(with_token(request, &token)?)
                    .await)
            }
            Rpc::ListRuns => ok(self
                .payment
                .list_runs(with_token(pb::ListRunsRequest::default(), &token)?)
                .await),
            Rpc::GetMonthlyReport => {
                let request = pb::GetMonthlyReportRequest {
                    period: fixtures.run.period.clone(),
                };
                ok(self
                    .payment
                    .get_monthly_report(with_token(request, &token)?)
                    .await)
            }
            Rpc::ExportRunForInspection => {
                let request = pb::ExportRunForInspectionRequest {
                    run_id: fixtures.run.run_id.clone(),
                };
                ok(self
                    .payment
                    .export_run_for_inspection(with_token(request, &token)?)
                    .await)
            }
            Rpc::GetRecoveryClaim => {
                let request = pb::GetRecoveryClaimRequest {
                    claim_id: fixtures.claim.claim_id.clone(),
                };
                ok(self
                    .payment
                    .get_recovery_claim(with_token(request, &token)?)
                    .await)
            }
            Rpc::RecordRecoveryRepayment => {
                let request = pb::RecordRecoveryRepaymentRequest {
                    command_id,
                    claim_id: fixtures.claim.claim_id.clone(),
                    expected_version: 7,
                    amount: Some(pb::Money { fen: 1 }),
                    bank_reference: "MATRIX-1".into(),
                };
                ok(self
                    .payment
                    .record_recovery_repayment(with_token(request, &token)?)
                    .await)
            }
            Rpc::WriteOffRecovery => {
                let request = pb::WriteOffRecoveryRequest {
                    command_id,
                    claim_id: fixtures.claim.claim_id.clone(),
                    expected_version: 7,
                    reason: pb::WriteOffReason::NoEstate.into(),
                };
                ok(self
                    .payment
                    .write_off_recovery(with_token(request, &token)?)
                    .await)
            }
            // payment: emergency cash (急难): the fixture run's grant, in the run already.
            Rpc::RecordEmergencyCashPayment => {
                let entitlement_id: String = sqlx::query_scalar(
                    "SELECT entitlement_id FROM payment_entitlements WHERE case_id = $1 \
                     AND entitlement_id LIKE 'assist-first-%'",
                )
                .bind(fixtures.run_case.as_str())
                .fetch_one(self.store.pool())
                .await?;
                let request = pb::RecordEmergencyCashPaymentRequest {
                    command_id,
                    entitlement_id,
                    reason_code: "immediate_need".into(),
                    note: "matrix".into(),
                    paid_on: Some(pb::Date {
                        year: self.today.year(),
                        month: i32::from(u8::from(self.today.month())),
                        day: i32::from(self.today.day()),
                    }),
                    handed_over_by: "matrix-officer".into(),
                    receipt_sha256: "0".repeat(64),
                };
                ok(self
                    .payment
                    .record_emergency_cash_payment(with_token(request, &token)?)
                    .await)
            }
            // department-integration: the fixture record again (stored before: UNCHANGED).
            Rpc::PushAssistanceRecords => {
                let request = pb::PushAssistanceRecordsRequest {
                    command_id,
                    records: vec![integration_record()],
                };
                ok(self
                    .integration
                    .push_assistance_records(with_token(request, &token)?)
                    .await)
            }
            Rpc::ImportAssistanceCsv => {
                let record = integration_record();
                let file = format!(
                    "record_id,national_id,program_code,kind,amount_fen,period_start,period_end\n{},{},{},{},{},{},{}\n",
                    record.record_id,
                    record.national_id,
                    record.program_code,
                    record.kind,
                    record.amount.map_or(0, |money| money.fen),
                    record.period_start,
                    record.period_end
                );
                let request = pb::ImportAssistanceCsvRequest {
                    command_id,
                    file: file.into_bytes(),
                    good_rows_only: false,
                };
                ok(self
                    .integration
                    .import_assistance_csv(with_token(request, &token)?)
                    .await)
            }
            Rpc::QueryHouseholdAssistance => {
                let request = pb::QueryHouseholdAssistanceRequest {
                    national_id: integration_record().national_id,
                    purpose: pb::QueryPurpose::Review.into(),
                    program_codes: vec!["temporary_assistance".into()],
                    page: None,
                };
                ok(self
                    .integration
                    .query_household_assistance(with_token(request, &token)?)
                    .await)
            }
            // department-integration: the economic-status check
            Rpc::RecordConsent => {
                let request = check_consent(&command_id, &target.household_id);
                ok(self
                    .integration
                    .record_consent(with_token(request, &token)?)
                    .await)
            }
            Rpc::OpenCheck => {
                let request = pb::OpenCheckRequest {
                    command_id,
                    case_id: target.case_id.clone(),
                };
                ok(self
                    .integration
                    .open_check(with_token(request, &token)?)
                    .await)
            }
            Rpc::AnswerCheck => {
                // A department cell is tax's system, a holder of the fixture check.
                let token = if cell.role == Role::Department {
                    holder_token(&self.auth, "tax", &cell.subject(), &cell.org_unit)
                } else {
                    token.clone()
                };
                let tax = fixtures
                    .check
                    .requests
                    .iter()
                    .find(|request| request.department_code == "tax")
                    .context("tax's request of the fixture check")?;
                let request = pb::AnswerCheckRequest {
                    command_id,
                    check_id: fixtures.check.check_id.clone(),
                    answers: holder_answers(tax)?,
                };
                ok(self
                    .integration
                    .answer_check(with_token(request, &token)?)
                    .await)
            }
            Rpc::RecordOverdueVerifications => ok(self
                .integration
                .record_overdue_verifications(with_token(
                    pb::RecordOverdueVerificationsRequest {},
                    &token,
                )?)
                .await),
            Rpc::ListCheckWorkQueue => {
                let request = pb::ListCheckWorkQueueRequest {
                    status: String::new(),
                    page: None,
                };
                ok(self
                    .integration
                    .list_check_work_queue(with_token(request, &token)?)
                    .await)
            }
            Rpc::RequestRecheck => {
                let request = pb::RequestRecheckRequest {
                    command_id,
                    check_id: fixtures.check.check_id.clone(),
                    expected_version: 1,
                    reason: "household_objection".into(),
                };
                ok(self
                    .integration
                    .request_recheck(with_token(request, &token)?)
                    .await)
            }
            // department-integration: duplicate assistance and the monitoring platform
            Rpc::ListDuplicateAssistance => ok(self
                .integration
                .list_duplicate_assistance(with_token(
                    pb::ListDuplicateAssistanceRequest { page: None },
                    &token,
                )?)
                .await),
            Rpc::ImportMonitoringWarnings => {
                let request = pb::ImportMonitoringWarningsRequest {
                    command_id,
                    warnings: vec![monitoring_warning()],
                };
                ok(self
                    .integration
                    .import_monitoring_warnings(with_token(request, &token)?)
                    .await)
            }
            Rpc::CloseMonitoringWarning => {
                let request = pb::CloseMonitoringWarningRequest {
                    command_id,
                    warning_id: monitoring_warning().warning_id,
                    outcome: "rectified".into(),
                    note: "a cell of the access matrix".into(),
                };
                ok(self
                    .integration
                    .close_monitoring_warning(with_token(request, &token)?)
                    .await)
            }
            Rpc::ListMonitoringWarnings => ok(self
                .integration
                .list_monitoring_warnings(with_token(
                    pb::ListMonitoringWarningsRequest {
                        status: String::new(),
                        page: None,
                    },
                    &token,
                )?)
                .await),
            Rpc::ExportMonitoringFeed => ok(self
                .integration
                .export_monitoring_feed(with_token(
                    pb::ExportMonitoringFeedRequest {
                        month: "2026-09".into(),
                        page: None,
                    },
                    &token,
                )?)
                .await),
            // department-integration: subscriptions and linkage notices (slice 3)
            Rpc::SubscribeEvents => {
                let request = pb::SubscribeEventsRequest::default();
                ok(self
                    .integration
                    .subscribe_events(with_token(request, &token)?)
                    .await)
            }
            Rpc::AcknowledgeLinkageNotice => {
                let request = pb::AcknowledgeLinkageNoticeRequest {
                    command_id,
                    notice_id: uuid::Uuid::now_v7().to_string(),
                    outcome: "granted".into(),
                };
                ok(self
                    .integration
                    .acknowledge_linkage_notice(with_token(request, &token)?)
                    .await)
            }
            Rpc::ListLinkageNotices => {
                let request = pb::ListLinkageNoticesRequest::default();
                ok(self
                    .integration
                    .list_linkage_notices(with_token(request, &token)?)
                    .await)
            }
            // Mounted on every port: each port must answer the same.
            Rpc::WhoAmI => {
                let mut answers = Vec::new();
                for client in &mut self.service_info {
                    answers.push(ok(client
                        .who_am_i(with_token(pb::WhoAmIRequest {}, &token)?)
                        .await));
                }
                same_on_every_port(answers)?
            }
            Rpc::GetServiceInfo => {
                let mut answers = Vec::new();
                for client in &mut self.service_info {
                    answers.push(ok(client
                        .get_service_info(with_token(pb::GetServiceInfoRequest {}, &token)?)
                        .await));
                }
                same_on_every_port(answers)?
            }
        };
        Ok(answer)
    }
}

/// department-integration's monitoring fixture: a warning of the target's street-town.
fn monitoring_warning() -> pb::MonitoringWarning {
    pb::MonitoringWarning {
        warning_id: "matrix-warning-1".into(),
        kind: "possibly_eligible".into(),
        feed_person_id: "5a".repeat(32),
        program_code: "dibao".into(),
        street_town_code: format!("{}000", &VILLAGE[..9]),
        detail: "the access matrix's warning".into(),
        raised_on: Some(pb::Date {
            year: 2026,
            month: 9,
            day: 1,
        }),
    }
}

/// department-integration's fixture: civil affairs' record of a temporary grant.
fn integration_record() -> pb::AssistanceRecord {
    pb::AssistanceRecord {
        record_id: "matrix-ca-1".into(),
        national_id: national_id("19800505", 901),
        program_code: "temporary_assistance".into(),
        kind: "cash".into(),
        amount: Some(pb::Money { fen: 50_000 }),
        period_start: "2026-09".into(),
        period_end: "2026-09".into(),
    }
}

// ---- department-integration: the economic-status check ----

/// A consent to every item of the example registry's check.
fn check_consent(command_id: &str, household_id: &str) -> pb::RecordConsentRequest {
    pb::RecordConsentRequest {
        command_id: command_id.into(),
        household_id: household_id.into(),
        data_items: [
            "household_registration",
            "household_members",
            "vehicles",
            "wages",
            "pension",
            "unemployment_benefit",
            "social_insurance_contributions",
            "real_estate",
            "business_registration",
            "tax_paid",
            "business_income",
            "housing_provident_fund",
            "bank_deposits",
            "securities",
            "insurance_policies",
        ]
        .iter()
        .map(|item| (*item).to_owned())
        .collect(),
        valid_from: date(2026, 9, 1),
        valid_until: None,
        document_digest: "ab".repeat(32),
    }
}

/// A data holder's system: a department token with its code.
fn holder_token(auth: &TestAuth, department: &str, subject: &str, org_unit: &str) -> String {
    auth.token_with(Role::Department, org_unit, |claims| {
        claims.sub = format!("{subject}.{department}");
        claims.department_code = Some(department.into());
    })
}

/// A holder's answer to every item of its request, typed by the field dictionary.
fn holder_answers(request: &pb::VerificationRequestState) -> anyhow::Result<Vec<pb::ItemAnswer>> {
    use sunshine_department_integration::dictionary::{FieldDictionary, ValueType};
    let dictionary = FieldDictionary::embedded()?;
    Ok(request
        .data_items
        .iter()
        .map(|item| pb::ItemAnswer {
            item: item.clone(),
            value: Some(match dictionary.item(item).map(|item| item.value_type) {
                Some(ValueType::Amount) => {
                    pb::item_answer::Value::Amount(pb::Money { fen: 100_000 })
                }
                Some(ValueType::Count) => pb::item_answer::Value::Count(0),
                Some(ValueType::Date) => pb::item_answer::Value::Date(pb::Date {
                    year: 2020,
                    month: 1,
                    day: 1,
                }),
                _ => pb::item_answer::Value::Flag(false),
            }),
        })
        .collect())
}

fn ok<T>(result: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
    result.map(|_| ())
}

/// The one answer of an RPC every port serves, or an error if two ports disagree.
fn same_on_every_port(answers: Vec<Result<(), Status>>) -> anyhow::Result<Result<(), Status>> {
    let code = |answer: &Result<(), Status>| match answer {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    };
    let mut answers = answers.into_iter();
    let first = answers
        .next()
        .ok_or_else(|| anyhow::anyhow!("no port to ask"))?;
    for other in answers {
        anyhow::ensure!(
            code(&other) == code(&first),
            "the ports disagree: {first:?} and {other:?}"
        );
    }
    Ok(first)
}

/// The objection a cell answers on the objection case (one per cell).
fn objection_id(cell: &Cell) -> String {
    format!("objection.{}.{}", cell.role.as_str(), cell.relation)
}

#[derive(Debug)]
struct Mismatch {
    cell: Cell,
    got: Code,
    message: String,
}

/// Every mismatch, one row each, after a summary per RPC of what was expected and what came.
fn mismatch_table(mismatches: &[Mismatch], checked: usize, backend: &str) -> String {
    let mut summary: BTreeMap<String, BTreeMap<(&str, &str), usize>> = BTreeMap::new();
    for mismatch in mismatches {
        *summary
            .entry(format!(
                "{}/{}",
                mismatch.cell.service, mismatch.cell.method
            ))
            .or_default()
            .entry((code_name(mismatch.cell.expected), code_name(mismatch.got)))
            .or_default() += 1;
    }
    let mut table = format!(
        "{} of {checked} access-matrix cells answered otherwise on {backend}\n\nby RPC (expected -> got × cells):\n",
        mismatches.len()
    );
    for (rpc, pairs) in &summary {
        let pairs: Vec<String> = pairs
            .iter()
            .map(|((expected, got), count)| format!("{expected} -> {got} ×{count}"))
            .collect();
        table.push_str(&format!("  {rpc}: {}\n", pairs.join(", ")));
    }
    table.push_str(&format!(
        "\n{:<46} {:<17} {:<26} {:<20} {:<20} message\n",
        "rpc", "role", "relation", "expected", "got"
    ));
    for mismatch in mismatches {
        let mut message: String = mismatch.message.chars().take(90).collect();
        if let Some(why) = &mismatch.cell.why {
            message.push_str(" [why: ");
            message.extend(why.chars().take(60));
            message.push(']');
        }
        table.push_str(&format!(
            "{:<46} {:<17} {:<26} {:<20} {:<20} {message}\n",
            format!("{}/{}", mismatch.cell.service, mismatch.cell.method),
            mismatch.cell.role.as_str(),
            mismatch.cell.relation,
            code_name(mismatch.cell.expected),
            code_name(mismatch.got),
        ));
    }
    table
}

async fn walk_the_matrix(cluster: bool) -> anyhow::Result<()> {
    let backend = if cluster {
        "PostgreSQL + NATS JetStream"
    } else {
        "SQLite + the in-process bus"
    };
    let cells = expand_matrix(MATRIX_FILE).map_err(|problems| {
        anyhow::anyhow!("tests/access-matrix.toml:\n  {}", problems.join("\n  "))
    })?;

    let auth = TestAuth::new()?;
    let keep = ScenarioBackends::start(cluster).await?;
    let (database_url, bus_url) = (keep.database_url(), keep.bus_url());
    // A fixed Monday, so that dates, deadlines and the holiday calendar never depend on the day
    // the test runs.
    let today = time::macros::date!(2026 - 9 - 21);
    let clock = Arc::new(ManualClock::new(today));
    let config = test_config(&auth, database_url.clone(), bus_url);
    let intake_clock = Arc::clone(&clock);
    let intake = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        keep.service_config(&config, sunshine_intake::SERVICE_NAME),
        move |config, listener, shutdown| {
            sunshine_intake::run_with_clock(config, listener, shutdown, intake_clock)
        },
    )
    .await?;
    let review_clock = Arc::clone(&clock);
    let review = RunningService::start(
        sunshine_review::SERVICE_NAME,
        keep.service_config(&config, sunshine_review::SERVICE_NAME),
        move |config, listener, shutdown| {
            sunshine_review::run_with_clock(config, listener, shutdown, review_clock)
        },
    )
    .await?;
    // Payment keeps the system clock: its runs pay this month.
    let payment = RunningService::start(
        sunshine_payment::SERVICE_NAME,
        keep.service_config(&config, sunshine_payment::SERVICE_NAME),
        sunshine_payment::run_sharing_process,
    )
    .await?;
    // department-integration
    let integration = RunningService::start(
        sunshine_department_integration::SERVICE_NAME,
        keep.service_config(&config, sunshine_department_integration::SERVICE_NAME),
        sunshine_department_integration::run_sharing_process,
    )
    .await?;
    integration
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    intake
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    review
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    payment
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    let database = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: database_url,
            ..Default::default()
        },
    )
    .await?;

    let mut world = World {
        clerk_a: auth.token_for(CLERK_A, Role::VillageClerk, VILLAGE),
        clerk_b: auth.token_for(CLERK_B, Role::VillageClerk, VILLAGE),
        street: auth.token_for(STREET_REVIEWER, Role::StreetReviewer, STREET),
        auth,
        intake: IntakeServiceClient::new(intake.channel().await?),
        review: ReviewServiceClient::new(review.channel().await?),
        payment: PaymentServiceClient::new(payment.channel().await?),
        integration: DepartmentIntegrationServiceClient::new(integration.channel().await?),
        service_info: [
            ServiceInfoServiceClient::new(intake.channel().await?),
            ServiceInfoServiceClient::new(review.channel().await?),
        ],
        store: EventStore::from_database(&database),
        config: config.clone(),
        today,
        counter: 0,
        next_family: 0,
        next_person: 0,
    };
    let mut fixtures = world.set_up(&cells).await?;

    let mut mismatches = Vec::new();
    for cell in &cells {
        let answer = world
            .probe(&mut fixtures, cell)
            .await
            .with_context(|| format!("probing {cell}"))?;
        let (got, message) = match answer {
            Ok(()) => (Code::Ok, String::new()),
            Err(status) => (status.code(), status.message().to_owned()),
        };
        if got != cell.expected {
            mismatches.push(Mismatch {
                cell: cell.clone(),
                got,
                message,
            });
        }
    }
    println!("access matrix: {} cells checked on {backend}", cells.len());

    database.close().await;
    intake.stop().await?;
    review.stop().await?;
    payment.stop().await?;
    integration.stop().await?;
    drop(keep);
    if mismatches.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(mismatch_table(&mismatches, cells.len(), backend))
    }
}

#[test]
fn the_access_matrix_covers_every_rpc_role_and_relation() -> anyhow::Result<()> {
    let cells = expand_matrix(MATRIX_FILE).map_err(|problems| {
        anyhow::anyhow!("tests/access-matrix.toml:\n  {}", problems.join("\n  "))
    })?;
    let described = described_rpcs()?;
    let rpcs: usize = described.values().map(BTreeSet::len).sum();
    assert_eq!(cells.len(), rpcs * Role::ALL.len() * RELATIONS.len());
    // Exactly one code per cell.
    let distinct: BTreeSet<(String, String, &str, &str)> = cells
        .iter()
        .map(|cell| {
            (
                cell.service.clone(),
                cell.method.clone(),
                cell.role.as_str(),
                cell.relation,
            )
        })
        .collect();
    assert_eq!(distinct.len(), cells.len());
    println!("access matrix: {} cells in {rpcs} RPCs", cells.len());
    Ok(())
}

#[test]
fn an_rpc_without_rows_is_reported() {
    let mut text = MATRIX_FILE.to_owned();
    let start = text
        .find("[rpc.ReviewService.NotifyRefusal]")
        .expect("the file has NotifyRefusal rows");
    text.truncate(start);
    let problems = expand_matrix(&text).expect_err("NotifyRefusal has no rows");
    assert!(
        problems
            .iter()
            .any(|problem| problem.contains("ReviewService/NotifyRefusal: an RPC without rows")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix_on_postgres_and_nats() -> anyhow::Result<()> {
    walk_the_matrix(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix_on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
    walk_the_matrix(false).await
}
