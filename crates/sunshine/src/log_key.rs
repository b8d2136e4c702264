//! `sunshine log-key`: the key that verifies the case-event log's checkpoints, computed from
//! the configuration (`log.origin` and `log.checkpoint_signing_key`), for the auditors to pin
//! and for the services' `log.verifier_key` (they serve it in `GetServiceInfo`); with
//! `--sealing`, the public sealing key derived from `log.key_encryption_key`, for the
//! `log.sealing_public_key` of the processes that seal without it.

use anyhow::Context as _;
use sunshine_evidence::checkpoint::CheckpointSigner;
use sunshine_platform::config::{LogConfig, decode_key};

/// The C2SP signed-note verifier key `<origin>+<key id>+<base64(0x01 || public key)>`.
pub fn verifier_key(log: &LogConfig) -> anyhow::Result<String> {
    let seed = decode_key(&log.checkpoint_signing_key)
        .map_err(|reason| anyhow::anyhow!("log.checkpoint_signing_key {reason}"))?;
    let signer = CheckpointSigner::new(
        log.origin.clone(),
        ed25519_dalek::SigningKey::from_bytes(&seed),
    )
    .context("log.origin")?;
    Ok(signer.verifier_key())
}

/// The public sealing key (base64) of the configured key-encryption key.
pub fn sealing_public_key(log: &LogConfig) -> anyhow::Result<String> {
    let key = sunshine_eventlog::crypto::KeyEncryptionKey::from_base64(&log.key_encryption_key)
        .context("log.key_encryption_key")?;
    Ok(key.sealing_public_key().to_base64())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sunshine_evidence::checkpoint::{Checkpoint, CheckpointVerifier};

    #[test]
    fn the_printed_key_verifies_the_logs_checkpoints_and_matches_service_info() {
        let mut log = LogConfig::default();
        log.generate_keys().unwrap();
        let printed = verifier_key(&log).unwrap();
        assert!(
            printed.starts_with(&format!("{}+", log.origin)),
            "{printed}"
        );
        // The same string the services serve in GetServiceInfo.
        assert_eq!(log.checkpoint_verifier_key().unwrap(), printed);
        // And it verifies what the log's signer signs.
        let seed = decode_key(&log.checkpoint_signing_key).unwrap();
        let signer = CheckpointSigner::new(
            log.origin.clone(),
            ed25519_dalek::SigningKey::from_bytes(&seed),
        )
        .unwrap();
        let checkpoint = Checkpoint {
            origin: log.origin.clone(),
            tree_size: 3,
            root_hash: [9; 32],
        };
        let note = signer.sign(&checkpoint).unwrap();
        let verifier = CheckpointVerifier::from_verifier_key(&printed).unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), checkpoint);
    }

    #[test]
    fn the_sealing_key_is_the_public_half_of_the_key_encryption_key() {
        let mut log = LogConfig::default();
        log.generate_keys().unwrap();
        let printed = sealing_public_key(&log).unwrap();
        let kek = sunshine_eventlog::crypto::KeyEncryptionKey::from_base64(&log.key_encryption_key)
            .unwrap();
        assert_eq!(printed, kek.sealing_public_key().to_base64());
        assert!(sealing_public_key(&LogConfig::default()).is_err());
    }

    #[test]
    fn a_missing_key_is_named() {
        let error = verifier_key(&LogConfig::default()).unwrap_err();
        assert!(
            error.to_string().contains("log.checkpoint_signing_key"),
            "{error}"
        );
    }
}
