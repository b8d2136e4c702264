//! Data keys by least privilege: a seal-only key store (only the sealing public key derived
//! from the key-encryption key) seals, and only a store with that key-encryption key opens.

mod common;

use common::{Backend, fresh_store};
use sqlx::Row as _;
use sunshine_eventlog::EventStore;
use sunshine_eventlog::crypto::{self, CryptoError, KeyEncryptionKey};
use sunshine_eventlog::keys::{KeyError, KeyStore};

const KEK: [u8; 32] = [7u8; 32];
const HOUSEHOLD: &str = "household-h1";

fn stores(store: &EventStore) -> (KeyStore, KeyStore) {
    let key_encryption_key = KeyEncryptionKey::from_bytes(KEK);
    let seal_only = KeyStore::seal_only(store.clone(), key_encryption_key.sealing_public_key());
    (seal_only, KeyStore::new(store.clone(), key_encryption_key))
}

async fn key_rows(store: &EventStore, subject: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let rows =
        sqlx::query("SELECT key_id, wrapped_key FROM data_keys WHERE subject = $1 ORDER BY key_id")
            .bind(subject)
            .fetch_all(store.pool())
            .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

async fn a_seal_only_store_seals_what_the_kek_store_opens(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (seal_only, with_kek) = stores(&store);
    assert!(!seal_only.can_open());
    assert!(with_kek.can_open());
    assert!(format!("{seal_only:?}").contains("can_open: false"));

    let findings = "家访: 住房漏雨, 无稳定收入".as_bytes();
    let sealed = seal_only
        .seal(HOUSEHOLD, findings, b"visit-1/findings")
        .await?;
    assert!(
        !sealed
            .windows(findings.len())
            .any(|window| window == findings),
        "no plain text in the sealed value"
    );
    let again = seal_only
        .seal(HOUSEHOLD, findings, b"visit-1/findings")
        .await?;
    let several = seal_only
        .seal_all(
            HOUSEHOLD,
            &[
                (b"first".as_slice(), b"visit-2/a".as_slice()),
                (b"second", b"visit-2/b"),
            ],
        )
        .await?;
    assert!(seal_only.seal_all(HOUSEHOLD, &[]).await?.is_empty());

    // A fresh key per call (one for all the values of one seal_all), each a data_keys row of
    // the subject wrapped to the public key (format 0x02).
    let key_ids = [
        crypto::sealed_key_id(&sealed)?,
        crypto::sealed_key_id(&again)?,
        crypto::sealed_key_id(&several[0])?,
    ];
    assert_eq!(crypto::sealed_key_id(&several[1])?, key_ids[2]);
    assert!(key_ids.iter().all(|key_id| key_id.starts_with("dk-")));
    assert_ne!(key_ids[0], key_ids[1]);
    assert_ne!(key_ids[1], key_ids[2]);
    let rows = key_rows(&store, HOUSEHOLD).await?;
    assert_eq!(rows.len(), 3);
    for (key_id, wrapped) in &rows {
        assert!(key_ids.contains(&key_id.as_str()), "{key_id}");
        assert_eq!(wrapped.len(), crypto::PUBLIC_WRAPPED_KEY_LENGTH);
        assert_eq!(wrapped[0], crypto::PUBLIC_WRAPPED_KEY_FORMAT_VERSION);
    }

    assert_eq!(with_kek.open(&sealed, b"visit-1/findings").await?, findings);
    assert_eq!(with_kek.open(&again, b"visit-1/findings").await?, findings);
    assert_eq!(with_kek.open(&several[0], b"visit-2/a").await?, b"first");
    assert_eq!(with_kek.open(&several[1], b"visit-2/b").await?, b"second");
    assert!(matches!(
        with_kek.open(&sealed, b"visit-2/a").await,
        Err(KeyError::Crypto(CryptoError::DecryptionFailed))
    ));

    // The KEK store goes on with the subject's newest key, whichever store made it.
    let (current, _) = with_kek.key_for(HOUSEHOLD).await?;
    assert!(key_ids.contains(&current.as_str()), "{current}");
    let by_intake = with_kek
        .seal(HOUSEHOLD, b"name", b"members[0].name")
        .await?;
    assert_eq!(crypto::sealed_key_id(&by_intake)?, current);
    assert_eq!(key_rows(&store, HOUSEHOLD).await?.len(), 3);
    assert_eq!(
        with_kek.open(&by_intake, b"members[0].name").await?,
        b"name"
    );
    Ok(())
}

async fn a_seal_only_store_opens_nothing_not_even_its_own(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (seal_only, with_kek) = stores(&store);
    let own = seal_only.seal(HOUSEHOLD, b"findings", b"ad").await?;
    let by_intake = with_kek.seal(HOUSEHOLD, b"name", b"ad").await?;
    let own_key_id = crypto::sealed_key_id(&own)?.to_owned();

    for sealed in [&own, &by_intake] {
        assert!(matches!(
            seal_only.open(sealed, b"ad").await,
            Err(KeyError::CannotOpen)
        ));
    }
    assert!(matches!(
        seal_only.key(&own_key_id).await,
        Err(KeyError::CannotOpen)
    ));
    assert!(matches!(
        seal_only.key_for(HOUSEHOLD).await,
        Err(KeyError::CannotOpen)
    ));
    assert!(matches!(
        seal_only.key_for("household-without-keys").await,
        Err(KeyError::CannotOpen)
    ));
    assert!(
        key_rows(&store, "household-without-keys").await?.is_empty(),
        "key_for created nothing"
    );
    // Both are still there for the KEK holder.
    assert_eq!(with_kek.open(&own, b"ad").await?, b"findings");
    assert_eq!(with_kek.open(&by_intake, b"ad").await?, b"name");
    Ok(())
}

async fn another_kek_opens_nothing(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (seal_only, _) = stores(&store);
    let sealed = seal_only.seal(HOUSEHOLD, b"findings", b"ad").await?;
    let other = KeyStore::new(store.clone(), KeyEncryptionKey::from_bytes([8u8; 32]));
    assert!(matches!(
        other.open(&sealed, b"ad").await,
        Err(KeyError::Crypto(CryptoError::DecryptionFailed))
    ));
    // Nor does a seal-only store of the other KEK's public key seal for this one.
    let other_seal_only = KeyStore::seal_only(
        store.clone(),
        KeyEncryptionKey::from_bytes([8u8; 32]).sealing_public_key(),
    );
    let for_other = other_seal_only.seal(HOUSEHOLD, b"findings", b"ad").await?;
    let (_, with_kek) = stores(&store);
    assert!(matches!(
        with_kek.open(&for_other, b"ad").await,
        Err(KeyError::Crypto(CryptoError::DecryptionFailed))
    ));
    assert_eq!(other.open(&for_other, b"ad").await?, b"findings");
    Ok(())
}

async fn destroying_the_subjects_keys_shreds_what_was_sealed(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (seal_only, with_kek) = stores(&store);
    let first = seal_only.seal(HOUSEHOLD, b"findings", b"ad").await?;
    let second = seal_only.seal(HOUSEHOLD, b"more findings", b"ad").await?;
    let by_intake = with_kek.seal(HOUSEHOLD, b"name", b"ad").await?;
    let neighbour = seal_only.seal("household-h2", b"kept", b"ad").await?;

    // Two keys: the KEK store sealed with the subject's newest, the seal-only store's second.
    assert_eq!(
        crypto::sealed_key_id(&by_intake)?,
        crypto::sealed_key_id(&second)?
    );
    assert_eq!(key_rows(&store, HOUSEHOLD).await?.len(), 2);

    // The seal-only store destroys (it needs no key): every key of the subject.
    assert_eq!(seal_only.destroy(HOUSEHOLD, "deletion order").await?, 2);
    for sealed in [&first, &second, &by_intake] {
        let gone = with_kek.open(sealed, b"ad").await;
        assert!(matches!(gone, Err(KeyError::Destroyed { .. })), "{gone:?}");
    }
    assert_eq!(with_kek.open(&neighbour, b"ad").await?, b"kept");
    let destroyed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM destroyed_data_keys WHERE subject = $1")
            .bind(HOUSEHOLD)
            .fetch_one(store.pool())
            .await?;
    assert_eq!(destroyed, 2);
    Ok(())
}

async fn a_tampered_wrapped_key_or_sealed_value_does_not_open(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (seal_only, with_kek) = stores(&store);
    let sealed = seal_only.seal(HOUSEHOLD, b"findings", b"ad").await?;

    for position in [sealed.len() - 20, sealed.len() - 1] {
        let mut tampered = sealed.clone();
        tampered[position] ^= 0x01;
        assert!(matches!(
            with_kek.open(&tampered, b"ad").await,
            Err(KeyError::Crypto(CryptoError::DecryptionFailed))
        ));
    }

    let (key_id, wrapped) = key_rows(&store, HOUSEHOLD).await?.remove(0);
    for position in [1, 32, 40, wrapped.len() - 1] {
        let mut tampered = wrapped.clone();
        tampered[position] ^= 0x01;
        sqlx::query("UPDATE data_keys SET wrapped_key = $1 WHERE key_id = $2")
            .bind(tampered)
            .bind(key_id.as_str())
            .execute(store.pool())
            .await?;
        assert!(
            matches!(
                with_kek.open(&sealed, b"ad").await,
                Err(KeyError::Crypto(CryptoError::DecryptionFailed))
            ),
            "byte {position}"
        );
    }
    sqlx::query("UPDATE data_keys SET wrapped_key = $1 WHERE key_id = $2")
        .bind(wrapped)
        .bind(key_id.as_str())
        .execute(store.pool())
        .await?;
    assert_eq!(with_kek.open(&sealed, b"ad").await?, b"findings");
    Ok(())
}

/// Rotating the key-encryption key: with the new key and the previous one a store opens
/// everything; the rewrap moves every data key (both formats) under the new key, a second run
/// finds nothing to do, the previous key alone then opens nothing, and the log is untouched.
async fn a_rotated_key_encryption_key_rewraps_every_data_key_and_leaves_the_log_alone(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (seal_only, old) = stores(&store);
    let household_value = old.seal(HOUSEHOLD, b"name", b"member-1/name").await?;
    let findings = seal_only.seal("case-c1", b"findings", b"c1").await?;
    // The sealed values go into the log, as services put them.
    let mut sealed_event = common::event("case-c1", "sealed");
    sealed_event.payload = [household_value.clone(), findings.clone()].concat();
    store
        .append(
            &common::stream("household", 1),
            sunshine_eventlog::ExpectedVersion::Any,
            &common::metadata(None),
            vec![sealed_event],
        )
        .await?;
    let log_before = log_rows(&store).await?;

    const NEW_KEK: [u8; 32] = [8u8; 32];
    let during = KeyStore::new(store.clone(), KeyEncryptionKey::from_bytes(NEW_KEK))
        .with_previous(KeyEncryptionKey::from_bytes(KEK));
    assert_eq!(
        during.open(&household_value, b"member-1/name").await?,
        b"name"
    );
    assert_eq!(during.open(&findings, b"c1").await?, b"findings");
    let new_only = KeyStore::new(store.clone(), KeyEncryptionKey::from_bytes(NEW_KEK));
    assert!(
        new_only
            .open(&household_value, b"member-1/name")
            .await
            .is_err()
    );

    let rewrapped = sunshine_eventlog::keys::rewrap_data_keys(
        &store,
        &KeyEncryptionKey::from_bytes(KEK),
        &KeyEncryptionKey::from_bytes(NEW_KEK),
    )
    .await?;
    assert_eq!((rewrapped.rewrapped, rewrapped.already_current), (2, 0));
    let again = sunshine_eventlog::keys::rewrap_data_keys(
        &store,
        &KeyEncryptionKey::from_bytes(KEK),
        &KeyEncryptionKey::from_bytes(NEW_KEK),
    )
    .await?;
    assert_eq!((again.rewrapped, again.already_current), (0, 2));

    assert_eq!(
        new_only.open(&household_value, b"member-1/name").await?,
        b"name"
    );
    assert_eq!(new_only.open(&findings, b"c1").await?, b"findings");
    assert!(matches!(
        old.open(&household_value, b"member-1/name").await,
        Err(KeyError::Crypto(CryptoError::DecryptionFailed))
    ));
    assert_eq!(
        log_rows(&store).await?,
        log_before,
        "the rewrap touched the log"
    );

    // A data key neither key opens stops the rewrap, named.
    let stranger = KeyStore::new(store.clone(), KeyEncryptionKey::from_bytes([9u8; 32]));
    stranger.seal("household-h2", b"x", b"y").await?;
    let stopped = sunshine_eventlog::keys::rewrap_data_keys(
        &store,
        &KeyEncryptionKey::from_bytes(KEK),
        &KeyEncryptionKey::from_bytes(NEW_KEK),
    )
    .await;
    assert!(
        matches!(&stopped, Err(KeyError::Config(reason)) if reason.contains("opens under neither")),
        "{stopped:?}"
    );
    Ok(())
}

async fn open_all_opens_many_values_as_open_does_each(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (seal_only, with_kek) = stores(&store);
    // More subjects than one statement's look-up takes, each with its own key.
    let mut sealed = Vec::new();
    for at in 0..1_203 {
        let subject = format!("household-{at}");
        let value = format!("account {at}");
        sealed.push((
            with_kek
                .seal(&subject, value.as_bytes(), subject.as_bytes())
                .await?,
            subject,
            value,
        ));
    }
    let shredded = seal_only
        .seal("household-gone", b"gone", b"household-gone")
        .await?;
    seal_only
        .destroy("household-gone", "deletion order")
        .await?;
    let mut values: Vec<(&[u8], &[u8])> = sealed
        .iter()
        .map(|(bytes, subject, _)| (bytes.as_slice(), subject.as_bytes()))
        .collect();
    values.push((&shredded, b"household-gone"));
    // The wrong associated data: the value does not open.
    values.push((&sealed[0].0, b"household-1"));
    let opened = with_kek.open_all(&values).await?;
    assert_eq!(opened.len(), 1_205);
    for ((_, _, value), opened) in sealed.iter().zip(&opened) {
        assert_eq!(opened.as_ref().ok(), Some(&value.as_bytes().to_vec()));
    }
    assert!(
        matches!(opened[1_203], Err(KeyError::Destroyed { .. })),
        "{:?}",
        opened[1_203]
    );
    assert!(opened[1_204].is_err());
    assert!(matches!(
        seal_only.open_all(&values[..1]).await,
        Err(KeyError::CannotOpen)
    ));
    assert!(with_kek.open_all(&[]).await?.is_empty());
    Ok(())
}

/// Every event row as stored, for comparing the log before and after.
async fn log_rows(store: &EventStore) -> anyhow::Result<Vec<(String, Vec<u8>, Vec<u8>)>> {
    let rows = sqlx::query("SELECT event_id, payload, hash FROM events ORDER BY sequence")
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

on_both_backends!(
    a_rotated_key_encryption_key_rewraps_every_data_key_and_leaves_the_log_alone,
    a_seal_only_store_seals_what_the_kek_store_opens,
    a_seal_only_store_opens_nothing_not_even_its_own,
    another_kek_opens_nothing,
    destroying_the_subjects_keys_shreds_what_was_sealed,
    a_tampered_wrapped_key_or_sealed_value_does_not_open,
    open_all_opens_many_values_as_open_does_each,
);
