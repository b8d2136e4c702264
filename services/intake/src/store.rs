//! Intake's store: the one place that reads what a command decides on and appends what it
//! decided. It owns, for every RPC:
//!
//! - **load**: a retry (the same command id and request digest) is answered from its first
//!   append before anything else; the household is folded (`sunshine_household::load`) and
//!   must be **in the caller's scope** — outside it, it reads exactly like a household that
//!   does not exist (the same `NOT_FOUND`) and the attempt is recorded on the household's
//!   access stream; the version the caller saw must be the household's;
//! - **seal**: the command's personal data, with the household's key under each field's
//!   [`SealedField`] path, into the events the aggregate decided — the first write, after
//!   every check;
//! - **append**: with the expected version and the command's metadata (actor, command id,
//!   request digest); rows a guard table must hold (the person index, the relatives registry)
//!   commit in the append's own transaction;
//! - **records** of calls (reads of personal data, attempts outside the scope, reads refused
//!   over the hourly quota), at the end of their streams.

use std::sync::Arc;

use sunshine_domain::{NationalId, OrgUnitCode};
use sunshine_eventlog::crypto::BlindIndexKey;
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::{
    AppendOutcome, EventMetadata, ExpectedVersion, GuardedAppend, NewEvent, StoreError, StreamId,
    actor_of,
};
use sunshine_household::{HouseholdEvent, HouseholdState, SealedField, sealed::OfficialName};
use sunshine_platform::{ApiError, Identity};
use sunshine_proto::v1 as pb;

use crate::commands::{AddMember, PersonalDatum, RegisterHousehold, RegisteredRelative};
use crate::errors::{household_not_found, not_a_household_id};
use crate::read_model::{self, ClaimRefusal, PersonClaim, PersonClaims};
use crate::streams::{AccessEvent, OfficialEvent, QuotaEvent, access_stream, official_stream};

/// The window of the per-officer quota of reads of personal data.
const QUOTA_WINDOW_US: i64 = 3_600 * 1_000_000;

/// Attempts of [`IntakeStore::append_record`] before giving up.
const RECORD_ATTEMPTS: usize = 16;

/// A command on an existing household, loaded.
#[derive(Debug)]
pub enum Loaded {
    /// A faithful retry: the first append's outcome.
    Retried(AppendOutcome),
    /// The household in the caller's scope, at the version the caller expected.
    Current(HouseholdState),
}

/// Metadata of a command: the caller, its id and the digest of the whole request, so that only
/// a faithful retry is answered as one.
pub fn command_metadata(caller: &Identity, command_id: &str, digest: String) -> EventMetadata {
    EventMetadata {
        actor: actor_of(caller),
        command_id: Some(command_id.to_owned()),
        request_digest: Some(digest),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    }
}

/// Metadata of a record the service makes of a call (access events, refusals).
fn record_metadata(caller: &Identity) -> EventMetadata {
    EventMetadata {
        actor: actor_of(caller),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    }
}

/// The pseudo-case of a household's registry events (not an application's case).
fn household_case(household_id: &str) -> String {
    format!("household-{household_id}")
}

/// The case an event of the household stream is filed under: its application's case, or the
/// household's own.
fn case_of(event: &HouseholdEvent, household_id: &str) -> String {
    match event {
        HouseholdEvent::ApplicationSubmitted(submitted) => submitted.case_id.clone(),
        HouseholdEvent::RelativeOfOfficialFlagged(flagged) => flagged.case_id.clone(),
        HouseholdEvent::ApplicationClosed(closed) => closed.case_id.clone(),
        _ => household_case(household_id),
    }
}

fn household_stream(household_id: &str) -> Result<StreamId, ApiError> {
    sunshine_household::stream_id(household_id).map_err(|_| not_a_household_id())
}

/// Whether the caller's org unit covers the household where it is registered now.
pub fn covers(caller: &Identity, household: &HouseholdState) -> Result<bool, ApiError> {
    let hukou = OrgUnitCode::parse(&household.hukou_org_unit_code).map_err(ApiError::internal)?;
    Ok(caller.org_unit.covers(&hukou))
}

/// Intake's store over the service's log.
#[derive(Debug, Clone)]
pub struct IntakeStore {
    log: LogRuntime,
    /// Keys the person index: intake holds the blind-index key.
    blind_index_key: Arc<BlindIndexKey>,
    /// Relations of officials' relatives that must be registered (configurable per province).
    official_relations: Arc<Vec<String>>,
    /// `privacy.personal_data_reads_per_officer_per_hour`.
    personal_data_reads_per_hour: u32,
}

impl IntakeStore {
    pub fn new(
        log: LogRuntime,
        blind_index_key: Arc<BlindIndexKey>,
        official_relations: Arc<Vec<String>>,
        personal_data_reads_per_hour: u32,
    ) -> Self {
        IntakeStore {
            log,
            blind_index_key,
            official_relations,
            personal_data_reads_per_hour,
        }
    }

    pub fn pool(&self) -> &sqlx::AnyPool {
        self.log.store.pool()
    }

    pub fn official_relations(&self) -> &[String] {
        &self.official_relations
    }

    /// The keyed blind index of a resident id (the person index and the registry find people
    /// by it).
    pub fn national_id_index(&self, national_id: &NationalId) -> [u8; 32] {
        read_model::national_id_index(&self.blind_index_key, national_id)
    }

    /// The key of the blind index of resident ids (for parsing requests).
    pub fn blind_index_key(&self) -> &BlindIndexKey {
        &self.blind_index_key
    }

    // ---- load ----

    /// The household folded from its stream; `None` if there is none.
    pub async fn load(&self, household_id: &str) -> Result<Option<HouseholdState>, ApiError> {
        Ok(sunshine_household::load(&self.log.store, household_id).await?)
    }

    /// The first append's outcome if `metadata`'s command was appended to `stream` already.
    pub async fn previous_outcome(
        &self,
        stream: &StreamId,
        metadata: &EventMetadata,
    ) -> Result<Option<AppendOutcome>, ApiError> {
        Ok(self.log.store.previous_outcome(stream, metadata).await?)
    }

    /// A retry of a command on household `household_id`, answered from its first append.
    pub async fn household_retry(
        &self,
        household_id: &str,
        metadata: &EventMetadata,
    ) -> Result<Option<AppendOutcome>, ApiError> {
        let stream = household_stream(household_id)?;
        self.previous_outcome(&stream, metadata).await
    }

    /// The household, if it exists and the caller's org unit covers it. Outside the caller's
    /// scope it reads exactly like a household that does not exist — the same code, message
    /// and details — and the attempt is recorded as `OutOfScopeAccessAttempted`.
    pub async fn household_in_scope(
        &self,
        caller: &Identity,
        household_id: &str,
        rpc: &'static str,
    ) -> Result<HouseholdState, ApiError> {
        let Some(household) = self.load(household_id).await? else {
            return Err(household_not_found(household_id));
        };
        if !covers(caller, &household)? {
            self.record_out_of_scope(caller, household_id, rpc).await?;
            return Err(household_not_found(household_id));
        }
        Ok(household)
    }

    /// A command on an existing household: a retry, or the household in the caller's scope at
    /// the version the caller saw.
    pub async fn load_for_change(
        &self,
        caller: &Identity,
        metadata: &EventMetadata,
        household_id: &str,
        expected_version: u64,
        rpc: &'static str,
    ) -> Result<Loaded, ApiError> {
        if let Some(previous) = self.household_retry(household_id, metadata).await? {
            return Ok(Loaded::Retried(previous));
        }
        let household = self.household_in_scope(caller, household_id, rpc).await?;
        if household.version != expected_version {
            return Err(ApiError::Conflict(format!(
                "household {household_id} is at version {}, not {expected_version}: someone changed it first; reload and retry",
                household.version
            )));
        }
        Ok(Loaded::Current(household))
    }

    /// The registry's officials whose relatives are living members of `household`, in a
    /// relation that must be registered.
    pub async fn registered_relatives(
        &self,
        household: &HouseholdState,
    ) -> Result<Vec<RegisteredRelative>, ApiError> {
        let mut found = Vec::new();
        for member in household.members.iter().filter(|member| member.alive) {
            let index_hex = hex::encode(&member.sealed.national_id_index);
            for relative in read_model::official_relatives(self.pool(), &index_hex)
                .await
                .map_err(ApiError::internal)?
            {
                if self
                    .official_relations
                    .iter()
                    .any(|relation| relation == &relative.relation)
                {
                    found.push(RegisteredRelative {
                        member_id: member.sealed.member_id.clone(),
                        relative,
                    });
                }
            }
        }
        Ok(found)
    }

    /// The people a registration claims, each checked before anything is written: a person
    /// belongs to one household. The claims are made again by the append's guard, in the
    /// append's own transaction.
    pub async fn claims_for(
        &self,
        caller: &Identity,
        register: &RegisterHousehold,
        rpc: &'static str,
    ) -> Result<PersonClaims, ApiError> {
        let claims: Vec<PersonClaim> = register
            .members
            .iter()
            .map(|member| PersonClaim {
                position: member.position,
                index_hex: hex::encode(member.national_id_index),
                member_id: member.member_id.clone(),
            })
            .collect();
        for claim in &claims {
            let holder = read_model::find_person(self.pool(), &claim.index_hex)
                .await
                .map_err(ApiError::internal)?;
            if let Some((holder_household, holder_member)) = holder
                && holder_household != register.household_id
            {
                let refusal = ClaimRefusal {
                    position: claim.position,
                    household_id: holder_household,
                    member_id: holder_member,
                };
                return Err(self.claim_refused(caller, refusal, rpc).await);
            }
        }
        Ok(PersonClaims {
            household_id: register.household_id.clone(),
            claims,
        })
    }

    /// Why a member cannot join: they belong to another household, or are recorded there as
    /// deceased. The other household is named only to a caller whose scope covers it; to any
    /// other the answer is generic, and the attempt is on that household's access record.
    pub async fn claim_refused(
        &self,
        caller: &Identity,
        refusal: ClaimRefusal,
        rpc: &'static str,
    ) -> ApiError {
        let field = format!("members[{}]", refusal.position);
        self.claim_refused_as(caller, refusal, field, rpc).await
    }

    /// [`IntakeStore::claim_refused`], the person named by `field`.
    pub async fn claim_refused_as(
        &self,
        caller: &Identity,
        refusal: ClaimRefusal,
        field: String,
        rpc: &'static str,
    ) -> ApiError {
        let holder = match self.load(&refusal.household_id).await {
            Ok(holder) => holder,
            Err(error) => return error,
        };
        let Some(holder) = holder else {
            // Claimed by a registration whose event is not readable yet: say no more.
            return ApiError::AlreadyExists {
                what: format!("{field} in another household"),
                existing_id: None,
            };
        };
        let in_scope = match covers(caller, &holder) {
            Ok(in_scope) => in_scope,
            Err(error) => return error,
        };
        if !in_scope
            && let Err(error) = self
                .record_out_of_scope(caller, &holder.household_id, rpc)
                .await
        {
            return error;
        }
        let deceased = holder
            .member(&refusal.member_id)
            .is_some_and(|member| !member.alive);
        if deceased {
            let place = if in_scope {
                format!("household {}", holder.household_id)
            } else {
                "another household".to_owned()
            };
            return ApiError::FailedPrecondition(format!(
                "{field} is recorded as deceased in {place}; a death recorded in error is corrected there (CorrectDeathRecord)"
            ));
        }
        ApiError::AlreadyExists {
            what: format!("{field} in another household"),
            existing_id: in_scope.then_some(holder.household_id),
        }
    }

    // ---- household composition ----

    /// The person a joining member claims, checked before anything is written: a person
    /// belongs to one household (a member of this one already is the aggregate's refusal). The
    /// claim is made again by the append's guard, in the append's own transaction.
    pub async fn claim_for_joining(
        &self,
        caller: &Identity,
        add: &AddMember,
        rpc: &'static str,
    ) -> Result<PersonClaims, ApiError> {
        let claim = PersonClaim {
            position: 0,
            index_hex: hex::encode(add.member.national_id_index),
            member_id: add.member.member_id.clone(),
        };
        let holder = read_model::find_person(self.pool(), &claim.index_hex)
            .await
            .map_err(ApiError::internal)?;
        if let Some((holder_household, holder_member)) = holder
            && holder_household != add.household_id
        {
            let refusal = ClaimRefusal {
                position: 0,
                household_id: holder_household,
                member_id: holder_member,
            };
            return Err(self
                .claim_refused_as(caller, refusal, "member".into(), rpc)
                .await);
        }
        Ok(PersonClaims {
            household_id: add.household_id.clone(),
            claims: vec![claim],
        })
    }

    /// [`IntakeStore::append`] of a member joining, the person's claim made by the append's
    /// guard in the append's own transaction; a refused claim is the caller's to answer
    /// ([`IntakeStore::claim_refused_as`]).
    pub async fn append_joining(
        &self,
        metadata: &EventMetadata,
        expected: ExpectedVersion,
        claims: &PersonClaims,
        mut events: Vec<HouseholdEvent>,
        personal_data: Vec<PersonalDatum>,
    ) -> Result<GuardedAppend<ClaimRefusal>, ApiError> {
        let household_id = claims.household_id.as_str();
        self.seal_into(household_id, &mut events, personal_data)
            .await?;
        let stream = household_stream(household_id)?;
        let new_events = household_new_events(household_id, &events);
        Ok(self
            .log
            .store
            .append_guarded(&stream, expected, metadata, new_events, claims)
            .await?)
    }

    /// [`IntakeStore::append`] of a member leaving, their claim given up in the append's own
    /// transaction.
    pub async fn append_leaving(
        &self,
        metadata: &EventMetadata,
        household_id: &str,
        expected: ExpectedVersion,
        mut events: Vec<HouseholdEvent>,
        personal_data: Vec<PersonalDatum>,
    ) -> Result<AppendOutcome, ApiError> {
        self.seal_into(household_id, &mut events, personal_data)
            .await?;
        let Some(HouseholdEvent::MemberLeft(left)) = events.first().cloned() else {
            return Err(ApiError::internal(std::io::Error::other(
                "a member leaving without MemberLeft",
            )));
        };
        let stream = household_stream(household_id)?;
        let new_events = household_new_events(household_id, &events);
        match self
            .log
            .store
            .append_guarded(
                &stream,
                expected,
                metadata,
                new_events,
                &read_model::ClaimRelease(&left),
            )
            .await?
        {
            GuardedAppend::Appended(outcome) => Ok(outcome),
            GuardedAppend::Refused(never) => match never {},
        }
    }

    // ---- end of household composition ----

    // ---- seal ----

    /// Seals `value` with the household's key under `field`'s path; empty stays empty (and
    /// creates no key).
    async fn seal(
        &self,
        household_id: &str,
        field: &SealedField,
        value: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        if value.is_empty() {
            return Ok(Vec::new());
        }
        self.log
            .keys
            .seal(
                SealedField::key_subject(household_id),
                value,
                &field.associated_data(household_id),
            )
            .await
            .map_err(ApiError::internal)
    }

    /// Seals each datum into the one decided event that carries its field, with one look-up
    /// of the household's key for all of them; empty values stay empty.
    pub async fn seal_into(
        &self,
        household_id: &str,
        events: &mut [HouseholdEvent],
        personal_data: Vec<PersonalDatum>,
    ) -> Result<(), ApiError> {
        let to_seal: Vec<(&PersonalDatum, Vec<u8>)> = personal_data
            .iter()
            .filter(|datum| !datum.plaintext.is_empty())
            .map(|datum| (datum, datum.field.associated_data(household_id)))
            .collect();
        let values: Vec<(&[u8], &[u8])> = to_seal
            .iter()
            .map(|(datum, associated_data)| {
                (datum.plaintext.as_slice(), associated_data.as_slice())
            })
            .collect();
        let mut sealed = self
            .log
            .keys
            .seal_all(SealedField::key_subject(household_id), &values)
            .await
            .map_err(ApiError::internal)?
            .into_iter();
        for datum in &personal_data {
            let value = if datum.plaintext.is_empty() {
                Vec::new()
            } else {
                sealed.next().unwrap_or_default()
            };
            let slot = events
                .iter_mut()
                .find_map(|event| datum.field.slot_in(event))
                .ok_or_else(|| {
                    ApiError::internal(std::io::Error::other(format!(
                        "no decided event carries the sealed field {}",
                        datum.field.path()
                    )))
                })?;
            *slot = value;
        }
        Ok(())
    }

    /// The plaintext of a sealed field; `None` once its key was destroyed.
    pub async fn open_bytes(
        &self,
        household_id: &str,
        field: &SealedField,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, ApiError> {
        if sealed.is_empty() {
            return Ok(Some(Vec::new()));
        }
        match self
            .log
            .keys
            .open(sealed, &field.associated_data(household_id))
            .await
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(sunshine_eventlog::keys::KeyError::Destroyed { .. }) => Ok(None),
            Err(error) => Err(ApiError::internal(error)),
        }
    }

    /// A sealed text field, opened; `[destroyed]` once crypto-shredded (gone for good).
    pub async fn open(
        &self,
        household_id: &str,
        field: &SealedField,
        sealed: &[u8],
    ) -> Result<String, ApiError> {
        match self.open_bytes(household_id, field, sealed).await? {
            Some(bytes) => String::from_utf8(bytes).map_err(ApiError::internal),
            None => Ok("[destroyed]".into()),
        }
    }

    // ---- append ----

    /// Seals the command's personal data into the decided events and appends them to the
    /// household's stream at `expected`.
    pub async fn append(
        &self,
        metadata: &EventMetadata,
        household_id: &str,
        expected: ExpectedVersion,
        mut events: Vec<HouseholdEvent>,
        personal_data: Vec<PersonalDatum>,
    ) -> Result<AppendOutcome, ApiError> {
        self.seal_into(household_id, &mut events, personal_data)
            .await?;
        let stream = household_stream(household_id)?;
        let new_events = household_new_events(household_id, &events);
        Ok(self
            .log
            .store
            .append(&stream, expected, metadata, new_events)
            .await?)
    }

    /// [`IntakeStore::append`] of a new household, with the person index's claims made by
    /// the append's guard in the append's own transaction.
    pub async fn append_registration(
        &self,
        caller: &Identity,
        metadata: &EventMetadata,
        claims: &PersonClaims,
        mut events: Vec<HouseholdEvent>,
        personal_data: Vec<PersonalDatum>,
        rpc: &'static str,
    ) -> Result<AppendOutcome, ApiError> {
        let household_id = claims.household_id.as_str();
        self.seal_into(household_id, &mut events, personal_data)
            .await?;
        let stream = household_stream(household_id)?;
        let new_events = household_new_events(household_id, &events);
        let appended = self
            .log
            .store
            .append_guarded(
                &stream,
                ExpectedVersion::NoStream,
                metadata,
                new_events,
                claims,
            )
            .await?;
        match appended {
            GuardedAppend::Appended(outcome) => Ok(outcome),
            GuardedAppend::Refused(refusal) => Err(self.claim_refused(caller, refusal, rpc).await),
        }
    }

    /// Appends a registration of an official's relative to its own stream, the registry row
    /// written in the same transaction (so the next application sees it; the projection
    /// writes it from the log too). The official's name is sealed first, with the
    /// registration's own key.
    pub async fn append_official(
        &self,
        metadata: &EventMetadata,
        mut registered: pb::OfficialRelativeRegistered,
        official_name: &str,
    ) -> Result<pb::OfficialRelativeRegistered, ApiError> {
        let name = OfficialName {
            registration_id: &registered.registration_id,
        };
        registered.sealed_official_name = self
            .log
            .keys
            .seal(
                &name.key_subject(),
                official_name.as_bytes(),
                &name.associated_data(),
            )
            .await
            .map_err(ApiError::internal)?;
        let stream = official_stream(&registered.registration_id)?;
        let event = OfficialEvent::RelativeRegistered(registered);
        let OfficialEvent::RelativeRegistered(registered) = &event;
        self.log
            .store
            .append_guarded(
                &stream,
                ExpectedVersion::NoStream,
                metadata,
                vec![NewEvent::typed(REGISTRY_CASE, &event)],
                &read_model::RegistryRow(registered),
            )
            .await?;
        Ok(registered.clone())
    }

    // ---- records of calls ----

    /// Appends a record the service makes of a call (an access, an attempt, a refusal) at the
    /// end of its stream, whatever that end is. Several readers of one household record at
    /// once, and two appends at "any" version can still collide on the stream's next version:
    /// the loser tries again at the new end rather than fail the caller's read.
    async fn append_record(
        &self,
        stream: &StreamId,
        caller: &Identity,
        new_event: NewEvent,
    ) -> Result<(), ApiError> {
        let metadata = record_metadata(caller);
        let mut attempt = 1;
        loop {
            match self
                .log
                .store
                .append(
                    stream,
                    ExpectedVersion::Any,
                    &metadata,
                    vec![new_event.clone()],
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) if attempt < RECORD_ATTEMPTS => {
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    pub async fn record_out_of_scope(
        &self,
        caller: &Identity,
        household_id: &str,
        rpc: &'static str,
    ) -> Result<(), ApiError> {
        let attempted = AccessEvent::OutOfScopeAttempted(pb::OutOfScopeAccessAttempted {
            household_id: household_id.to_owned(),
            rpc: rpc.to_owned(),
            caller_org_unit_code: caller.org_unit.as_str().to_owned(),
        });
        let stream = access_stream(household_id)?;
        self.append_record(
            &stream,
            caller,
            NewEvent::typed(household_case(household_id), &attempted),
        )
        .await
    }

    /// Appends `PersonalDataAccessed` to the household's access stream (in the case's file
    /// too, for a reveal); the officer's own words are sealed.
    pub async fn record_access(
        &self,
        caller: &Identity,
        mut accessed: pb::PersonalDataAccessed,
        note: &str,
    ) -> Result<(), ApiError> {
        let household_id = accessed.household_id.clone();
        let stream = access_stream(&household_id)?;
        let case_id = if accessed.case_id.is_empty() {
            household_case(&household_id)
        } else {
            accessed.case_id.clone()
        };
        // The note is bound to the event that carries it: its id is chosen first.
        let event_id = uuid::Uuid::now_v7();
        accessed.sealed_note = self
            .seal(
                &household_id,
                &SealedField::AccessNote { event_id },
                note.as_bytes(),
            )
            .await?;
        let mut new_event = NewEvent::typed(case_id, &AccessEvent::PersonalDataAccessed(accessed));
        new_event.event_id = event_id;
        self.append_record(&stream, caller, new_event).await
    }

    /// Counts a read of personal data against the caller's hourly quota (in the database, so
    /// every replica counts together); beyond it the read is refused and the refusal recorded.
    pub async fn count_personal_data_read(
        &self,
        caller: &Identity,
        rpc: &'static str,
    ) -> Result<(), ApiError> {
        let now_us = sunshine_eventlog::event::now_micros();
        let window_start_us = now_us - now_us.rem_euclid(QUOTA_WINDOW_US);
        let reads =
            read_model::count_personal_data_read(self.pool(), &caller.subject, window_start_us)
                .await
                .map_err(ApiError::internal)?;
        let limit = self.personal_data_reads_per_hour;
        if reads <= u64::from(limit) {
            return Ok(());
        }
        let refused = QuotaEvent::ReadRefused(pb::PersonalDataReadRefused {
            rpc: rpc.to_owned(),
            limit,
            window_start_unix_seconds: window_start_us / 1_000_000,
            reads_in_window: reads,
        });
        let officer = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("sunshine/intake/officer/{}", caller.subject).as_bytes(),
        );
        let stream =
            StreamId::new("intake", "quota", &officer.to_string()).map_err(ApiError::internal)?;
        self.append_record(
            &stream,
            caller,
            NewEvent::typed(format!("officer-{officer}"), &refused),
        )
        .await?;
        Err(ApiError::ResourceExhausted(format!(
            "at most {limit} reads of personal data per officer per hour; this hour's are used up"
        )))
    }
}

/// The case of the registry's events (not a household's, not an application's).
const REGISTRY_CASE: &str = "registry-official-relatives";

fn household_new_events(household_id: &str, events: &[HouseholdEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|event| NewEvent::typed(case_of(event, household_id), event))
        .collect()
}
