//! Intake's own tables: the read model for queries (households, applications), the two
//! guard tables a command consults (who already belongs to a household; the registry of
//! officials' relatives) and the per-officer count of reads of personal data. Commands write
//! the guard rows as they append; the projection writes everything from the log too, so a
//! rebuild (or a crash between append and write) always ends in the same tables.
//!
//! A person's claim is given up only when they leave the household (`MemberLeft`): not when
//! they die (a death is recorded in the household that had them, and a person recorded as
//! deceased is registered nowhere again), not when the household moves (the household id
//! stays). A member who left is recorded as departed, so a replay of their household's earlier
//! events never claims them again; a later join is another member id.

use sqlx::{AnyConnection, AnyPool, Row as _};
use sunshine_domain::NationalId;
use sunshine_eventlog::AppendGuard;
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::crypto::{BlindIndexKey, blind_index};
use sunshine_eventlog::schema::Migration;
use sunshine_evidence::record::{Actor, EventMetadata, RecordedEvent};
use sunshine_household::HouseholdEvent;
use sunshine_platform::config::DatabaseKind;
use sunshine_proto::events::StreamEvent;
use sunshine_proto::v1 as pb;

use crate::streams::OfficialEvent;

/// Blind-index domain of resident id numbers.
pub const NATIONAL_ID_DOMAIN: &str = "resident-id";

/// The keyed blind index of a resident id: the person index and the registry of officials'
/// relatives find people by it (a pure function of the service's key).
pub fn national_id_index(key: &BlindIndexKey, national_id: &NationalId) -> [u8; 32] {
    blind_index(key, NATIONAL_ID_DOMAIN, national_id.as_str())
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "intake: households, applications, person index, officials' relatives",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE intake_households (
            household_id TEXT PRIMARY KEY,
            hukou_org_unit_code TEXT NOT NULL,
            registered_at_us BIGINT NOT NULL
        );
        CREATE TABLE intake_person_index (
            national_id_index TEXT PRIMARY KEY,
            household_id TEXT NOT NULL,
            member_id TEXT NOT NULL
        );
        CREATE TABLE intake_applications (
            application_id TEXT PRIMARY KEY,
            case_id TEXT NOT NULL,
            household_id TEXT NOT NULL,
            program_code TEXT NOT NULL,
            status TEXT NOT NULL,
            accepted_org_unit_code TEXT NOT NULL,
            hukou_org_unit_code TEXT NOT NULL,
            submitted_at_us BIGINT NOT NULL,
            route BIGINT NOT NULL,
            relative_of_official BIGINT NOT NULL
        );
        CREATE INDEX intake_applications_scope ON intake_applications (accepted_org_unit_code, application_id);
        CREATE TABLE intake_official_relatives (
            registration_id TEXT PRIMARY KEY,
            relative_index TEXT NOT NULL,
            relation TEXT NOT NULL,
            official_position TEXT NOT NULL,
            official_org_unit_code TEXT NOT NULL
        );
        CREATE INDEX intake_official_relatives_index ON intake_official_relatives (relative_index);"
            .to_owned()
        },
    },
    Migration {
        version: 2,
        description: "intake: reads of personal data per officer and hour; applications by the household's org unit",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE intake_personal_data_reads (
            subject TEXT NOT NULL,
            window_start_us BIGINT NOT NULL,
            reads BIGINT NOT NULL,
            PRIMARY KEY (subject, window_start_us)
        );
        CREATE INDEX intake_applications_hukou ON intake_applications (hukou_org_unit_code, application_id);"
            .to_owned()
        },
    },
    Migration {
        version: 3,
        description: "intake: the registered official's subject, recused from the relative's cases",
        // Rows written before version 3 are filled in by a rebuild of the read model.
        script: |_kind: DatabaseKind| {
            "ALTER TABLE intake_official_relatives ADD COLUMN official_subject TEXT NOT NULL DEFAULT '';"
                .to_owned()
        },
    },
    // household composition
    Migration {
        version: 40,
        description: "intake: members who left a household, whose person-index claim is given up",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE intake_person_departures (
            household_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            PRIMARY KEY (household_id, member_id)
        );"
            .to_owned()
        },
    },
];

/// Counts one read of personal data by `subject` in the window starting at `window_start_us`
/// and answers how many there are now. One statement, so replicas sharing the database count
/// together and two reads at once cannot both see the old count.
pub async fn count_personal_data_read(
    pool: &AnyPool,
    subject: &str,
    window_start_us: i64,
) -> Result<u64, sqlx::Error> {
    let reads: i64 = sqlx::query_scalar(
        "INSERT INTO intake_personal_data_reads (subject, window_start_us, reads) VALUES ($1, $2, 1) \
         ON CONFLICT (subject, window_start_us) DO UPDATE SET reads = intake_personal_data_reads.reads + 1 \
         RETURNING reads",
    )
    .bind(subject)
    .bind(window_start_us)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(reads).unwrap_or_default())
}

/// A registered relative of an official, as the guard table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficialRelative {
    pub registration_id: String,
    /// The official's token subject: recused from every stage of the relative's cases.
    pub official_subject: String,
    pub relation: String,
    pub official_position: String,
    pub official_org_unit_code: String,
}

/// A person a registration claims for its household: the member at `position` of the
/// request, by the blind index of their resident id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonClaim {
    pub position: usize,
    pub index_hex: String,
    pub member_id: String,
}

/// The claims of one registration, made by the append's guard: in the transaction that
/// appends `HouseholdRegistered`, so a claim exists exactly when its registration does.
#[derive(Debug, Clone)]
pub struct PersonClaims {
    pub household_id: String,
    pub claims: Vec<PersonClaim>,
}

/// The member at `position` of a registration already belongs to `household_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRefusal {
    pub position: usize,
    pub household_id: String,
    pub member_id: String,
}

impl AppendGuard for PersonClaims {
    type Refusal = ClaimRefusal;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), ClaimRefusal>, sqlx::Error> {
        for claim in &self.claims {
            // On PostgreSQL a concurrent uncommitted claim of the same person makes this wait
            // for that transaction; the SELECT then sees whichever claim committed.
            sqlx::query(
                "INSERT INTO intake_person_index (national_id_index, household_id, member_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (national_id_index) DO NOTHING",
            )
            .bind(claim.index_hex.as_str())
            .bind(self.household_id.as_str())
            .bind(claim.member_id.as_str())
            .execute(&mut *connection)
            .await?;
            let holder = sqlx::query(
                "SELECT household_id, member_id FROM intake_person_index WHERE national_id_index = $1",
            )
            .bind(claim.index_hex.as_str())
            .fetch_one(&mut *connection)
            .await?;
            let household_id: String = holder.try_get(0)?;
            if household_id != self.household_id {
                return Ok(Err(ClaimRefusal {
                    position: claim.position,
                    household_id,
                    member_id: holder.try_get(1)?,
                }));
            }
        }
        Ok(Ok(()))
    }
}

// ---- household composition ----

/// Claims `member_id` of `household_id` for the person `index_hex`, unless the member left
/// the household already (a replay of an old event must not claim them again).
async fn claim_unless_departed(
    connection: &mut AnyConnection,
    index_hex: &str,
    household_id: &str,
    member_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO intake_person_index (national_id_index, household_id, member_id) \
         SELECT $1, $2, $3 WHERE NOT EXISTS \
         (SELECT 1 FROM intake_person_departures WHERE household_id = $2 AND member_id = $3) \
         ON CONFLICT (national_id_index) DO NOTHING",
    )
    .bind(index_hex)
    .bind(household_id)
    .bind(member_id)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Gives up the claim of a member who left, for good.
async fn release_claim(
    connection: &mut AnyConnection,
    left: &pb::MemberLeft,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO intake_person_departures (household_id, member_id) VALUES ($1, $2) \
         ON CONFLICT (household_id, member_id) DO NOTHING",
    )
    .bind(left.household_id.as_str())
    .bind(left.member_id.as_str())
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "DELETE FROM intake_person_index WHERE national_id_index = $1 AND household_id = $2 AND member_id = $3",
    )
    .bind(hex::encode(&left.national_id_index))
    .bind(left.household_id.as_str())
    .bind(left.member_id.as_str())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// The claim a leaving member gives up, in the transaction that appends `MemberLeft`.
#[derive(Debug)]
pub struct ClaimRelease<'a>(pub &'a pb::MemberLeft);

impl AppendGuard for ClaimRelease<'_> {
    type Refusal = std::convert::Infallible;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        release_claim(connection, self.0).await?;
        Ok(Ok(()))
    }
}

// ---- end of household composition ----

/// The registry row of an official's relative, written with its event.
#[derive(Debug)]
pub struct RegistryRow<'a>(pub &'a pb::OfficialRelativeRegistered);

impl AppendGuard for RegistryRow<'_> {
    type Refusal = std::convert::Infallible;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        record_official_relative(connection, self.0).await?;
        Ok(Ok(()))
    }
}

/// The household and member a person belongs to.
pub async fn find_person(
    pool: &AnyPool,
    index_hex: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT household_id, member_id FROM intake_person_index WHERE national_id_index = $1",
    )
    .bind(index_hex)
    .fetch_optional(pool)
    .await?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
}

pub async fn record_official_relative(
    connection: &mut AnyConnection,
    registered: &pb::OfficialRelativeRegistered,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO intake_official_relatives (registration_id, relative_index, relation, official_position, official_org_unit_code, official_subject) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (registration_id) DO NOTHING",
    )
    .bind(registered.registration_id.as_str())
    .bind(hex::encode(&registered.relative_index))
    .bind(registered.relation.as_str())
    .bind(registered.official_position.as_str())
    .bind(registered.official_org_unit_code.as_str())
    .bind(registered.official_subject.as_str())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

pub async fn official_relatives(
    pool: &AnyPool,
    index_hex: &str,
) -> Result<Vec<OfficialRelative>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT registration_id, relation, official_position, official_org_unit_code, official_subject FROM intake_official_relatives \
         WHERE relative_index = $1 ORDER BY registration_id",
    )
    .bind(index_hex)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OfficialRelative {
                registration_id: row.try_get(0)?,
                relation: row.try_get(1)?,
                official_position: row.try_get(2)?,
                official_org_unit_code: row.try_get(3)?,
                official_subject: row.try_get(4)?,
            })
        })
        .collect()
}

/// Filters of `ListApplications`, already checked and scoped.
#[derive(Debug, Clone)]
pub struct ApplicationQuery {
    /// Households registered (now) in org units whose code starts with this.
    pub org_unit_prefix: String,
    pub program_code: Option<String>,
    pub status: Option<String>,
    pub after_application_id: Option<String>,
    pub limit: i64,
}

pub async fn list_applications(
    pool: &AnyPool,
    query: &ApplicationQuery,
) -> Result<Vec<pb::ApplicationSummary>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT application_id, case_id, household_id, program_code, status, accepted_org_unit_code, submitted_at_us, route, \
         relative_of_official FROM intake_applications \
         WHERE hukou_org_unit_code LIKE $1 AND ($2 = '' OR program_code = $2) AND ($3 = '' OR status = $3) \
         AND application_id > $4 ORDER BY application_id LIMIT $5",
    )
    .bind(format!("{}%", query.org_unit_prefix))
    .bind(query.program_code.clone().unwrap_or_default())
    .bind(query.status.clone().unwrap_or_default())
    .bind(query.after_application_id.clone().unwrap_or_default())
    .bind(query.limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let submitted_at_us: i64 = row.try_get(6)?;
            Ok(pb::ApplicationSummary {
                application_id: row.try_get(0)?,
                case_id: row.try_get(1)?,
                household_id: row.try_get(2)?,
                program_code: row.try_get(3)?,
                status: row.try_get(4)?,
                accepted_org_unit_code: row.try_get(5)?,
                submitted_at: Some(prost_types::Timestamp {
                    seconds: submitted_at_us.div_euclid(1_000_000),
                    nanos: (submitted_at_us.rem_euclid(1_000_000) * 1_000) as i32,
                }),
                route: i32::try_from(row.try_get::<i64, _>(7)?).unwrap_or_default(),
                relative_of_official: row.try_get::<i64, _>(8)? != 0,
            })
        })
        .collect()
}

/// The read-model projection, fed by the log; it also records on the household stream when
/// review closes an application's case.
#[derive(Debug, Clone)]
pub struct IntakeReadModel {
    pub store: sunshine_eventlog::EventStore,
}

sunshine_proto::stream_events! {
    /// What intake hears of review's case streams (`review-case-<id>`): that a case opened,
    /// and the decisions that close an application. Review's other case events are none of
    /// intake's business: read with `decode_known`, they are passed over.
    #[derive(Debug, Clone, PartialEq)]
    enum HeardFromReview in "review-case" {
        Opened(pb::CaseOpened),
        Approved(pb::CaseApproved),
        Rejected(pb::CaseRejected),
        Withdrawn(pb::CaseWithdrawn),
        Terminated(pb::BenefitTerminated),
    }
}

/// The events of the log this projection follows, each by its stream kind's typed decode; a
/// kind it does not follow is `None`.
enum Followed {
    Household(HouseholdEvent),
    Official(OfficialEvent),
    Review(HeardFromReview),
}

fn followed(event: &RecordedEvent) -> Result<Option<Followed>, HandlerError> {
    let decoded = if HouseholdEvent::is_stream(&event.stream_id) {
        HouseholdEvent::decode(&event.event_type, &event.payload)
            .map(|event| Some(Followed::Household(event)))
    } else if OfficialEvent::is_stream(&event.stream_id) {
        OfficialEvent::decode(&event.event_type, &event.payload)
            .map(|event| Some(Followed::Official(event)))
    } else if HeardFromReview::is_stream(&event.stream_id) {
        HeardFromReview::decode_known(&event.event_type, &event.payload)
            .map(|heard| heard.map(Followed::Review))
    } else {
        Ok(None)
    };
    decoded.map_err(|error| HandlerError(error.to_string()))
}

/// The outcome a review event closes an application with.
fn closing_outcome(heard: &HeardFromReview) -> Option<&'static str> {
    match heard {
        HeardFromReview::Opened(_) => None,
        HeardFromReview::Approved(_) => Some("approved"),
        HeardFromReview::Rejected(_) => Some("rejected"),
        HeardFromReview::Withdrawn(_) => Some("withdrawn"),
        HeardFromReview::Terminated(_) => Some("terminated"),
    }
}

impl IntakeReadModel {
    /// Appends `ApplicationClosed` to the household stream for a decision on its case.
    async fn close_application(
        &self,
        event: &RecordedEvent,
        outcome: &str,
    ) -> Result<(), HandlerError> {
        let command_id = format!("close-application-{}", event.event_id);
        let row = sqlx::query("SELECT application_id, household_id, program_code FROM intake_applications WHERE case_id = $1")
            .bind(event.case_id.as_str())
            .fetch_optional(self.store.pool())
            .await?;
        // Not in the read model yet: fail, and the consumer tries again shortly.
        let Some(row) = row else {
            return Err(HandlerError(format!(
                "no application with case {} yet",
                event.case_id
            )));
        };
        let application_id: String = row.try_get(0)?;
        let household_id: String = row.try_get(1)?;
        let program_code: String = row.try_get(2)?;
        let stream = sunshine_eventlog::StreamId::new("intake", "household", &household_id)
            .map_err(|error| HandlerError(error.to_string()))?;
        let version = self
            .store
            .stream_version(&stream)
            .await
            .map_err(|error| HandlerError(error.to_string()))?;
        let closed = HouseholdEvent::ApplicationClosed(pb::ApplicationClosed {
            application_id,
            case_id: event.case_id.clone(),
            household_id,
            program_code,
            outcome: outcome.to_owned(),
        });
        let metadata = EventMetadata {
            actor: Actor {
                subject: "intake-application-closer".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            },
            command_id: Some(command_id),
            causation_id: Some(event.event_id.to_string()),
            ..EventMetadata::default()
        };
        let new_event = sunshine_eventlog::NewEvent::typed(event.case_id.clone(), &closed);
        self.store
            .append(
                &stream,
                sunshine_eventlog::ExpectedVersion::Exact(version),
                &metadata,
                vec![new_event],
            )
            .await
            .map_err(|error| HandlerError(error.to_string()))?;
        Ok(())
    }
}

/// Status of an application routed `route`, before review or a department acts.
pub fn initial_status(route: i32) -> &'static str {
    if route == pb::Route::Department as i32 {
        "sent_to_department"
    } else {
        "submitted"
    }
}

async fn apply_event(
    connection: &mut AnyConnection,
    event: &RecordedEvent,
) -> Result<(), HandlerError> {
    let household_event = match followed(event)? {
        None => return Ok(()),
        Some(Followed::Review(HeardFromReview::Opened(opened))) => {
            sqlx::query(
                "UPDATE intake_applications SET status = 'under_review' WHERE application_id = $1",
            )
            .bind(opened.application_id.as_str())
            .execute(&mut *connection)
            .await?;
            return Ok(());
        }
        // Closings are `react`'s: it appends `ApplicationClosed`, which this then applies.
        Some(Followed::Review(_)) => return Ok(()),
        Some(Followed::Official(OfficialEvent::RelativeRegistered(registered))) => {
            record_official_relative(connection, &registered).await?;
            return Ok(());
        }
        Some(Followed::Household(household_event)) => household_event,
    };
    match household_event {
        HouseholdEvent::Registered(registered) => {
            sqlx::query(
                "INSERT INTO intake_households (household_id, hukou_org_unit_code, registered_at_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (household_id) DO NOTHING",
            )
            .bind(registered.household_id.as_str())
            .bind(registered.hukou_org_unit_code.as_str())
            .bind(event.recorded_at_us)
            .execute(&mut *connection)
            .await?;
            for member in &registered.members {
                claim_unless_departed(
                    connection,
                    &hex::encode(&member.national_id_index),
                    &registered.household_id,
                    &member.member_id,
                )
                .await?;
            }
        }
        // household composition: the person index follows who joins and who leaves.
        HouseholdEvent::MemberJoined(joined) => {
            if let Some(member) = &joined.member {
                claim_unless_departed(
                    connection,
                    &hex::encode(&member.national_id_index),
                    &joined.household_id,
                    &member.member_id,
                )
                .await?;
            }
        }
        HouseholdEvent::MemberLeft(left) => release_claim(connection, &left).await?,
        HouseholdEvent::Moved(moved) => {
            // The household's applications follow it: the old village loses sight of them.
            for table in ["intake_households", "intake_applications"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET hukou_org_unit_code = $1 WHERE household_id = $2"
                )))
                .bind(moved.to_org_unit_code.as_str())
                .bind(moved.household_id.as_str())
                .execute(&mut *connection)
                .await?;
            }
        }
        // The person stays claimed by the household: the dead are registered nowhere again.
        HouseholdEvent::MemberDied(_) | HouseholdEvent::DeathRecordCorrected(_) => {}
        HouseholdEvent::ApplicationSubmitted(submitted) => {
            sqlx::query(
                "INSERT INTO intake_applications (application_id, case_id, household_id, program_code, status, \
                 accepted_org_unit_code, hukou_org_unit_code, submitted_at_us, route, relative_of_official) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (application_id) DO NOTHING",
            )
            .bind(submitted.application_id.as_str())
            .bind(submitted.case_id.as_str())
            .bind(submitted.household_id.as_str())
            .bind(submitted.program_code.as_str())
            .bind(initial_status(submitted.route))
            .bind(submitted.accepted_org_unit_code.as_str())
            .bind(submitted.hukou_org_unit_code.as_str())
            .bind(event.recorded_at_us)
            .bind(i64::from(submitted.route))
            .bind(i64::from(submitted.relative_of_official))
            .execute(&mut *connection)
            .await?;
        }
        HouseholdEvent::ApplicationClosed(closed) => {
            sqlx::query("UPDATE intake_applications SET status = $1 WHERE application_id = $2")
                .bind(closed.outcome.as_str())
                .bind(closed.application_id.as_str())
                .execute(&mut *connection)
                .await?;
        }
        HouseholdEvent::CircumstanceChanged(_) | HouseholdEvent::RelativeOfOfficialFlagged(_) => {}
    }
    Ok(())
}

impl Projection for IntakeReadModel {
    fn name(&self) -> &str {
        "intake-read-model"
    }

    fn react<'a>(&'a self, event: &'a RecordedEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            if !HeardFromReview::is_stream(&event.stream_id) {
                return Ok(());
            }
            let Some(Followed::Review(heard)) = followed(event)? else {
                return Ok(());
            };
            match closing_outcome(&heard) {
                Some(outcome) => self.close_application(event, outcome).await,
                None => Ok(()),
            }
        })
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut AnyConnection,
        event: &'a RecordedEvent,
    ) -> HandlerFuture<'a> {
        Box::pin(apply_event(connection, event))
    }

    fn reset<'a>(&'a self, connection: &'a mut AnyConnection) -> HandlerFuture<'a> {
        Box::pin(async move {
            for table in [
                "intake_households",
                "intake_applications",
                "intake_official_relatives",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                    .execute(&mut *connection)
                    .await?;
            }
            Ok(())
        })
    }
}
