//! Payment accounts as intake seals them, for the scenarios that append review's decisions at
//! the boundary (their households were never registered through intake): a household's
//! `HouseholdRegistered` on `intake-household-<id>` carrying only its payment account, sealed
//! exactly as intake seals it — the encoded `PaymentAccount` under the household's data key,
//! associated data `SealedField::PaymentAccount` of the household — so payment's projection
//! keeps it and the export opens it as it opens intake's own.

use prost::Message as _;
use sha2::Digest as _;
use sunshine_eventlog::crypto::KeyEncryptionKey;
use sunshine_eventlog::keys::KeyStore;
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_household::SealedField;
use sunshine_platform::Config;
use sunshine_proto::v1 as pb;

/// The account these scenarios give `household_id`: a bank, `6222` and 15 digits of SHA-256
/// of the id, and a holder's name (fictitious, as every person of the tests).
pub fn account_of(household_id: &str) -> pb::PaymentAccount {
    let digest = sha2::Sha256::digest(format!("sunshine/tests/account/{household_id}"));
    let mut number = [0_u8; 8];
    number.copy_from_slice(&digest[..8]);
    pb::PaymentAccount {
        bank: "示例农商银行".into(),
        account_number: format!(
            "6222{:015}",
            u64::from_be_bytes(number) % 1_000_000_000_000_000
        ),
        holder_name: "王建国".into(),
    }
}

/// The key store of the scenario's log (its key-encryption key), as intake's.
pub fn key_store(store: &EventStore, config: &Config) -> anyhow::Result<KeyStore> {
    Ok(KeyStore::new(
        store.clone(),
        KeyEncryptionKey::from_base64(&config.log.key_encryption_key)?,
    ))
}

/// Registers `household_id` with `account` sealed, as intake would (the household's stream
/// must not exist yet).
pub async fn register_account(
    store: &EventStore,
    config: &Config,
    household_id: &str,
    account: &pb::PaymentAccount,
) -> anyhow::Result<()> {
    let keys = key_store(store, config)?;
    let sealed = keys
        .seal(
            SealedField::key_subject(household_id),
            &account.encode_to_vec(),
            &SealedField::PaymentAccount.associated_data(household_id),
        )
        .await?;
    let registered = pb::HouseholdRegistered {
        household_id: household_id.into(),
        hukou_org_unit_code: crate::VILLAGE.into(),
        sealed_payment_account: sealed,
        ..Default::default()
    };
    let metadata = EventMetadata {
        actor: Actor {
            subject: "test-boundary".into(),
            role: "system".into(),
            org_unit: String::new(),
            department_code: None,
        },
        ..EventMetadata::default()
    };
    store
        .append(
            &StreamId::new("intake", "household", household_id)?,
            ExpectedVersion::NoStream,
            &metadata,
            vec![NewEvent::typed(household_id, &registered)],
        )
        .await?;
    Ok(())
}

/// Registers each household with its [`account_of`].
pub async fn register_accounts(
    store: &EventStore,
    config: &Config,
    household_ids: &[&str],
) -> anyhow::Result<()> {
    for household_id in household_ids {
        register_account(store, config, household_id, &account_of(household_id)).await?;
    }
    Ok(())
}

/// Registers `household_id` with its [`account_of`] unless intake's stream of it exists
/// already (a household of several cases is registered once).
pub async fn register_if_new(
    store: &EventStore,
    config: &Config,
    household_id: &str,
) -> anyhow::Result<()> {
    let stream = StreamId::new("intake", "household", household_id)?;
    if store.stream_version(&stream).await? > 0 {
        return Ok(());
    }
    register_account(store, config, household_id, &account_of(household_id)).await
}
