//! Signed checkpoints of the Merkle log, in the C2SP formats that existing transparency-log
//! tooling already verifies: <https://c2sp.org/tlog-checkpoint> inside an Ed25519
//! <https://c2sp.org/signed-note>.
//!
//! This module owns the checkpoint text, its Ed25519 signature line and the published verifier
//! key string. It does no I/O. All base64 is standard RFC 4648 §4 with padding; all text is
//! UTF-8; "\n" is the single byte 0x0A.
//!
//! # Checkpoint body (the signed note text)
//!
//! ```text
//! <origin>\n                  e.g. "sunshine.example/district-990101/case-events"
//! <tree size>\n               decimal ASCII, no sign, no leading zeros ("0" for the empty tree)
//! <base64(root hash)>\n       the 32-byte RFC 6962 root: 44 characters ending in "="
//! ```
//!
//! Bodies are created without extension lines. When parsing, any further non-empty lines
//! (extension lines) are accepted, covered by the signature, and otherwise ignored.
//! The origin must be non-empty and contain no Unicode space and no "+".
//!
//! # Signed note
//!
//! ```text
//! <body>                      as above, ending in "\n"
//! \n                          one blank line
//! — <key name> <base64(key ID (4 bytes) || Ed25519 signature (64 bytes))>\n
//! ...                         one or more signature lines
//! ```
//!
//! "— " is U+2014 EM DASH (bytes E2 80 94) followed by a space (0x20). The Ed25519 signature
//! (RFC 8032, pure Ed25519) is over the body bytes exactly: up to and including the body's
//! final "\n", not the blank line. A whole signed note must be UTF-8 with no control character
//! other than "\n"; the body is separated from the signatures by the *last* blank line.
//!
//! Key names are non-empty and contain no Unicode space and no "+". For Ed25519 the key ID is
//!
//! ```text
//! key ID = first 4 bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)
//! ```
//!
//! A verifier ignores signature lines whose (key name, key ID) pair is not its own, rejects the
//! note if a line with its pair does not verify, and rejects the note if none of its lines do.
//!
//! # Verifier key (what the log publishes for auditors)
//!
//! The string accepted by `golang.org/x/mod/sumdb/note.NewVerifier`:
//!
//! ```text
//! <key name>+<key ID as 8 lowercase hex digits>+<base64(0x01 || 32-byte Ed25519 public key)>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Signature type identifier byte of Ed25519 in C2SP signed-note.
pub const ED25519_SIGNATURE_TYPE: u8 = 0x01;

/// The prefix of every signature line: U+2014 EM DASH and a space.
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// Length in bytes of a key ID.
pub const KEY_ID_LENGTH: usize = 4;

/// More signature lines than this make a note malformed (the same cap as Go's `note.Open`).
pub const MAXIMUM_SIGNATURE_LINES: usize = 100;

const ED25519_SIGNATURE_LENGTH: usize = 64;
const ED25519_PUBLIC_KEY_LENGTH: usize = 32;

/// A 4-byte key ID (see the module documentation for how it is derived).
pub type KeyId = [u8; KEY_ID_LENGTH];

/// Why a checkpoint, a signed note or a verifier key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("key name must be non-empty and contain no spaces or '+'")]
    InvalidKeyName,
    #[error("origin must be non-empty and contain no spaces, '+' or control characters")]
    InvalidOrigin,
    #[error("malformed signed note: {reason}")]
    MalformedNote { reason: &'static str },
    #[error("malformed checkpoint body: {reason}")]
    MalformedBody { reason: &'static str },
    #[error("tree size is not canonical decimal (digits only, no leading zeros, fits in u64)")]
    NonCanonicalTreeSize,
    #[error("root hash is not valid standard base64")]
    InvalidRootHashBase64,
    #[error("root hash is {length} bytes, expected 32")]
    WrongRootHashLength { length: usize },
    #[error("a signature by the trusted key failed to verify")]
    InvalidSignature,
    #[error("note carries no signature by the trusted key")]
    NoTrustedSignature,
    #[error("malformed verifier key: {reason}")]
    MalformedVerifierKey { reason: &'static str },
    #[error("verifier key ID does not match its name and public key")]
    VerifierKeyIdMismatch,
    #[error("unsupported signature type {signature_type:#04x}, only Ed25519 (0x01)")]
    UnsupportedSignatureType { signature_type: u8 },
    #[error("public key is not a valid Ed25519 point")]
    InvalidPublicKey,
}

/// A tree head of the case-event log: the log's identity, its size and its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Identifies the log, e.g. `sunshine.example/district-990101/case-events`.
    pub origin: String,
    /// Number of leaves (events) in the tree.
    pub tree_size: u64,
    /// RFC 6962 root of the tree of `tree_size` leaves.
    pub root_hash: Hash,
}

impl Checkpoint {
    /// The note text: origin, tree size and base64 root hash, each followed by "\n".
    ///
    /// Does not validate the origin; [`CheckpointSigner::sign`] does.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64_STANDARD.encode(self.root_hash)
        )
    }

    /// Parses a note text (body) into a checkpoint. Extension lines are accepted and ignored.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let Some(without_final_newline) = body.strip_suffix('\n') else {
            return Err(CheckpointError::MalformedBody {
                reason: "body does not end in a newline",
            });
        };
        let mut lines = without_final_newline.split('\n');
        let (Some(origin), Some(size_text), Some(root_text)) =
            (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::MalformedBody {
                reason: "fewer than three lines",
            });
        };
        for extension_line in lines {
            if extension_line.is_empty() {
                return Err(CheckpointError::MalformedBody {
                    reason: "empty extension line",
                });
            }
        }
        validate_origin(origin)?;
        let tree_size = parse_canonical_tree_size(size_text)?;
        let root_hash = parse_root_hash(root_text)?;
        Ok(Self {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
        })
    }
}

fn validate_origin(origin: &str) -> Result<(), CheckpointError> {
    let has_forbidden_character = origin.chars().any(|character| {
        character.is_whitespace() || character == '+' || is_forbidden_control_character(character)
    });
    if origin.is_empty() || has_forbidden_character {
        return Err(CheckpointError::InvalidOrigin);
    }
    Ok(())
}

fn parse_canonical_tree_size(size_text: &str) -> Result<u64, CheckpointError> {
    let all_digits = !size_text.is_empty() && size_text.bytes().all(|byte| byte.is_ascii_digit());
    let leading_zero = size_text.len() > 1 && size_text.starts_with('0');
    if !all_digits || leading_zero {
        return Err(CheckpointError::NonCanonicalTreeSize);
    }
    size_text
        .parse::<u64>()
        .map_err(|_| CheckpointError::NonCanonicalTreeSize)
}

fn parse_root_hash(root_text: &str) -> Result<Hash, CheckpointError> {
    // The standard engine requires canonical padding and rejects non-zero trailing bits, so a
    // root hash has exactly one textual form.
    let decoded = BASE64_STANDARD
        .decode(root_text)
        .map_err(|_| CheckpointError::InvalidRootHashBase64)?;
    let root_hash: Hash =
        decoded
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::WrongRootHashLength {
                length: decoded.len(),
            })?;
    Ok(root_hash)
}

/// ASCII control characters below U+0020, which signed notes must not contain (except "\n").
fn is_forbidden_control_character(character: char) -> bool {
    character < ' '
}

fn is_valid_key_name(key_name: &str) -> bool {
    !key_name.is_empty()
        && !key_name.chars().any(|character| {
            character.is_whitespace()
                || character == '+'
                || is_forbidden_control_character(character)
        })
}

/// `SHA-256(key name || 0x0A || 0x01 || public key)[..4]`: the Ed25519 key ID.
pub fn ed25519_key_id(key_name: &str, public_key: &VerifyingKey) -> KeyId {
    let mut hasher = Sha256::new();
    hasher.update(key_name.as_bytes());
    hasher.update([b'\n', ED25519_SIGNATURE_TYPE]);
    hasher.update(public_key.as_bytes());
    let digest = hasher.finalize();
    let mut key_id = [0u8; KEY_ID_LENGTH];
    key_id.copy_from_slice(&digest[..KEY_ID_LENGTH]);
    key_id
}

/// Formats `<name>+<hex key ID>+<base64(0x01 || public key)>`.
pub fn format_verifier_key(
    key_name: &str,
    public_key: &VerifyingKey,
) -> Result<String, CheckpointError> {
    if !is_valid_key_name(key_name) {
        return Err(CheckpointError::InvalidKeyName);
    }
    Ok(format_verifier_key_of_valid_name(key_name, public_key))
}

fn format_verifier_key_of_valid_name(key_name: &str, public_key: &VerifyingKey) -> String {
    let key_id = ed25519_key_id(key_name, public_key);
    let mut typed_key = Vec::with_capacity(1 + ED25519_PUBLIC_KEY_LENGTH);
    typed_key.push(ED25519_SIGNATURE_TYPE);
    typed_key.extend_from_slice(public_key.as_bytes());
    format!(
        "{key_name}+{:08x}+{}",
        u32::from_be_bytes(key_id),
        BASE64_STANDARD.encode(typed_key)
    )
}

/// Parses a verifier key string into its key name and Ed25519 public key, checking the key ID.
pub fn parse_verifier_key(verifier_key: &str) -> Result<(String, VerifyingKey), CheckpointError> {
    // The name cannot contain '+', but the base64 part can: split at the first two only.
    let mut parts = verifier_key.splitn(3, '+');
    let (Some(key_name), Some(key_id_hex), Some(typed_key_base64)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(CheckpointError::MalformedVerifierKey {
            reason: "expected <name>+<key id>+<key>",
        });
    };
    if !is_valid_key_name(key_name) {
        return Err(CheckpointError::InvalidKeyName);
    }
    if key_id_hex.len() != 2 * KEY_ID_LENGTH
        || !key_id_hex.bytes().all(|byte| byte.is_ascii_hexdigit())
    {
        return Err(CheckpointError::MalformedVerifierKey {
            reason: "key id is not 8 hex digits",
        });
    }
    let claimed_key_id =
        u32::from_str_radix(key_id_hex, 16).map_err(|_| CheckpointError::MalformedVerifierKey {
            reason: "key id is not 8 hex digits",
        })?;
    let typed_key = BASE64_STANDARD.decode(typed_key_base64).map_err(|_| {
        CheckpointError::MalformedVerifierKey {
            reason: "key is not valid base64",
        }
    })?;
    let Some((&signature_type, public_key_bytes)) = typed_key.split_first() else {
        return Err(CheckpointError::MalformedVerifierKey {
            reason: "key is empty",
        });
    };
    if signature_type != ED25519_SIGNATURE_TYPE {
        return Err(CheckpointError::UnsupportedSignatureType { signature_type });
    }
    let public_key_array: [u8; ED25519_PUBLIC_KEY_LENGTH] =
        public_key_bytes
            .try_into()
            .map_err(|_| CheckpointError::MalformedVerifierKey {
                reason: "ed25519 public key is not 32 bytes",
            })?;
    let public_key = VerifyingKey::from_bytes(&public_key_array)
        .map_err(|_| CheckpointError::InvalidPublicKey)?;
    if u32::from_be_bytes(ed25519_key_id(key_name, &public_key)) != claimed_key_id {
        return Err(CheckpointError::VerifierKeyIdMismatch);
    }
    Ok((key_name.to_owned(), public_key))
}

/// Signs checkpoints as signed notes with one Ed25519 key.
pub struct CheckpointSigner {
    key_name: String,
    key_id: KeyId,
    signing_key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CheckpointSigner")
            .field("key_name", &self.key_name)
            .field(
                "key_id",
                &format_args!("{:08x}", u32::from_be_bytes(self.key_id)),
            )
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// A signer whose signature lines carry `key_name` (by convention the log's origin).
    pub fn new(
        key_name: impl Into<String>,
        signing_key: SigningKey,
    ) -> Result<Self, CheckpointError> {
        let key_name = key_name.into();
        if !is_valid_key_name(&key_name) {
            return Err(CheckpointError::InvalidKeyName);
        }
        let key_id = ed25519_key_id(&key_name, &signing_key.verifying_key());
        Ok(Self {
            key_name,
            key_id,
            signing_key,
        })
    }

    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The verifier key string to publish for auditors.
    pub fn verifier_key(&self) -> String {
        format_verifier_key_of_valid_name(&self.key_name, &self.signing_key.verifying_key())
    }

    /// The verifier matching this signer.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            key_name: self.key_name.clone(),
            key_id: self.key_id,
            verifying_key: self.signing_key.verifying_key(),
        }
    }

    /// The complete signed note: body, blank line, one signature line.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        validate_origin(&checkpoint.origin)?;
        Ok(self.sign_note_text(&checkpoint.body()))
    }

    /// Signs any note text that is already known to be well formed (ends in "\n", no control
    /// characters other than "\n", not ending in a blank line).
    fn sign_note_text(&self, note_text: &str) -> String {
        let signature = self.signing_key.sign(note_text.as_bytes());
        let mut signature_blob = Vec::with_capacity(KEY_ID_LENGTH + ED25519_SIGNATURE_LENGTH);
        signature_blob.extend_from_slice(&self.key_id);
        signature_blob.extend_from_slice(&signature.to_bytes());
        format!(
            "{note_text}\n{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.key_name,
            BASE64_STANDARD.encode(signature_blob)
        )
    }
}

/// Verifies signed checkpoints against one trusted Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerifier {
    key_name: String,
    key_id: KeyId,
    verifying_key: VerifyingKey,
}

impl CheckpointVerifier {
    pub fn new(
        key_name: impl Into<String>,
        verifying_key: VerifyingKey,
    ) -> Result<Self, CheckpointError> {
        let key_name = key_name.into();
        if !is_valid_key_name(&key_name) {
            return Err(CheckpointError::InvalidKeyName);
        }
        let key_id = ed25519_key_id(&key_name, &verifying_key);
        Ok(Self {
            key_name,
            key_id,
            verifying_key,
        })
    }

    /// Parses a published verifier key string (see the module documentation).
    pub fn from_verifier_key(verifier_key: &str) -> Result<Self, CheckpointError> {
        let (key_name, verifying_key) = parse_verifier_key(verifier_key)?;
        Self::new(key_name, verifying_key)
    }

    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// The verifier key string for this key.
    pub fn verifier_key(&self) -> String {
        format_verifier_key_of_valid_name(&self.key_name, &self.verifying_key)
    }

    /// Checks the note's signature by this key, then parses its body as a checkpoint.
    ///
    /// The caller still has to compare `origin` with the log it expects.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let note_text = self.open_note(note)?;
        Checkpoint::parse_body(note_text)
    }

    /// Verifies a signed note and returns its text (everything up to and including the
    /// newline before the last blank line).
    fn open_note<'note>(&self, note: &'note str) -> Result<&'note str, CheckpointError> {
        if note
            .chars()
            .any(|character| is_forbidden_control_character(character) && character != '\n')
        {
            return Err(CheckpointError::MalformedNote {
                reason: "control character other than newline",
            });
        }
        if !note.ends_with('\n') {
            return Err(CheckpointError::MalformedNote {
                reason: "does not end in a newline",
            });
        }
        let Some(separator_position) = note.rfind("\n\n") else {
            return Err(CheckpointError::MalformedNote {
                reason: "no blank line before the signatures",
            });
        };
        // The text keeps its final newline; the blank line belongs to neither part.
        let note_text = &note[..separator_position + 1];
        let signature_block = &note[separator_position + 2..];
        let Some(signature_lines_text) = signature_block.strip_suffix('\n') else {
            return Err(CheckpointError::MalformedNote {
                reason: "no signature lines",
            });
        };

        let mut trusted_signature_verified = false;
        let mut signature_line_count = 0usize;
        for signature_line in signature_lines_text.split('\n') {
            signature_line_count += 1;
            if signature_line_count > MAXIMUM_SIGNATURE_LINES {
                return Err(CheckpointError::MalformedNote {
                    reason: "too many signature lines",
                });
            }
            let (key_name, signature_blob) = parse_signature_line(signature_line)?;
            let Some((line_key_id, signature_bytes)) =
                signature_blob.split_first_chunk::<KEY_ID_LENGTH>()
            else {
                return Err(CheckpointError::MalformedNote {
                    reason: "signature shorter than its key id",
                });
            };
            if key_name != self.key_name || *line_key_id != self.key_id {
                // Signatures by other keys (witnesses, rotated keys) are ignored by design.
                continue;
            }
            let signature_array: [u8; ED25519_SIGNATURE_LENGTH] = signature_bytes
                .try_into()
                .map_err(|_| CheckpointError::InvalidSignature)?;
            let signature = Signature::from_bytes(&signature_array);
            self.verifying_key
                .verify_strict(note_text.as_bytes(), &signature)
                .map_err(|_| CheckpointError::InvalidSignature)?;
            trusted_signature_verified = true;
        }
        if !trusted_signature_verified {
            return Err(CheckpointError::NoTrustedSignature);
        }
        Ok(note_text)
    }
}

/// Splits `— <key name> <base64>` into the key name and the decoded signature bytes.
fn parse_signature_line(signature_line: &str) -> Result<(&str, Vec<u8>), CheckpointError> {
    let Some(after_prefix) = signature_line.strip_prefix(SIGNATURE_LINE_PREFIX) else {
        return Err(CheckpointError::MalformedNote {
            reason: "signature line does not start with an em dash and a space",
        });
    };
    let Some((key_name, signature_base64)) = after_prefix.split_once(' ') else {
        return Err(CheckpointError::MalformedNote {
            reason: "signature line has no space between key name and signature",
        });
    };
    if !is_valid_key_name(key_name) {
        return Err(CheckpointError::MalformedNote {
            reason: "signature line has an invalid key name",
        });
    }
    let signature_blob =
        BASE64_STANDARD
            .decode(signature_base64)
            .map_err(|_| CheckpointError::MalformedNote {
                reason: "signature is not valid base64",
            })?;
    Ok((key_name, signature_blob))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ORIGIN: &str = "sunshine.example/district-990101/case-events";

    fn signing_key(seed_byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed_byte; 32])
    }

    fn signer() -> CheckpointSigner {
        CheckpointSigner::new(ORIGIN, signing_key(7)).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.to_owned(),
            tree_size: 20_852_163,
            root_hash: [0xab; 32],
        }
    }

    /// Replaces the body of a signed note while keeping its signature lines.
    fn with_body(note: &str, new_body: &str) -> String {
        let separator = note.rfind("\n\n").unwrap();
        format!("{new_body}{}", &note[separator + 1..])
    }

    // The reference vector of golang.org/x/mod/sumdb/note (note_test.go / doc comment),
    // computed by an independent implementation.
    const GO_VERIFIER_KEY: &str =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TYPED_SEED_BASE64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIGNATURE_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn go_signer() -> CheckpointSigner {
        let typed_seed = BASE64_STANDARD.decode(GO_TYPED_SEED_BASE64).unwrap();
        assert_eq!(typed_seed[0], ED25519_SIGNATURE_TYPE);
        let seed: [u8; 32] = typed_seed[1..].try_into().unwrap();
        CheckpointSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap()
    }

    #[test]
    fn body_has_exactly_three_lines() {
        let body = checkpoint().body();
        assert_eq!(
            body,
            format!(
                "{ORIGIN}\n20852163\n{}\n",
                BASE64_STANDARD.encode([0xab; 32])
            )
        );
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), checkpoint());
    }

    #[test]
    fn signed_note_round_trips() {
        let note = signer().sign(&checkpoint()).unwrap();
        let body = checkpoint().body();
        assert!(note.starts_with(&format!("{body}\n\u{2014} {ORIGIN} ")));
        assert!(note.ends_with('\n'));
        let verifier = CheckpointVerifier::from_verifier_key(&signer().verifier_key()).unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), checkpoint());
        assert_eq!(signer().verifier(), verifier);
    }

    #[test]
    fn empty_tree_checkpoint_round_trips() {
        let empty = Checkpoint {
            origin: ORIGIN.to_owned(),
            tree_size: 0,
            root_hash: crate::merkle::empty_tree_root(),
        };
        let note = signer().sign(&empty).unwrap();
        assert!(note.contains("\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"));
        assert_eq!(signer().verifier().verify(&note).unwrap(), empty);
    }

    #[test]
    fn signature_matches_the_go_reference_implementation() {
        let signer = go_signer();
        assert_eq!(signer.verifier_key(), GO_VERIFIER_KEY);
        assert_eq!(
            signer.sign_note_text(GO_TEXT),
            format!("{GO_TEXT}\n{GO_SIGNATURE_LINE}")
        );
        let verifier = CheckpointVerifier::from_verifier_key(GO_VERIFIER_KEY).unwrap();
        let go_note = format!("{GO_TEXT}\n{GO_SIGNATURE_LINE}");
        assert_eq!(verifier.open_note(&go_note).unwrap(), GO_TEXT);
        let altered = go_note.replace("cryptography", "cryptographY");
        assert_eq!(
            verifier.open_note(&altered),
            Err(CheckpointError::InvalidSignature)
        );
    }

    #[test]
    fn key_id_matches_hand_computed_value() {
        // Computed outside Rust with Python's `cryptography` and `hashlib`:
        //   pk = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32)).public_key() (raw bytes)
        //   hashlib.sha256(b"sunshine.example/district-990101/case-events\n\x01" + pk)
        //       .hexdigest()[:8]
        let public_key = signing_key(7).verifying_key();
        assert_eq!(
            hex(public_key.as_bytes()),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(hex(&ed25519_key_id(ORIGIN, &public_key)), "5bdbd217");
        assert_eq!(hex(&signer().key_id()), "5bdbd217");

        // PeterNeumann's key ID is published as c74f20a3 in the Go tests.
        let (name, go_public_key) = parse_verifier_key(GO_VERIFIER_KEY).unwrap();
        assert_eq!(hex(&ed25519_key_id(&name, &go_public_key)), "c74f20a3");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn tampered_size_root_or_signature_is_rejected() {
        let note = signer().sign(&checkpoint()).unwrap();
        let verifier = signer().verifier();

        let mut bigger = checkpoint();
        bigger.tree_size += 1;
        assert_eq!(
            verifier.verify(&with_body(&note, &bigger.body())),
            Err(CheckpointError::InvalidSignature)
        );

        let mut other_root = checkpoint();
        other_root.root_hash[31] ^= 1;
        assert_eq!(
            verifier.verify(&with_body(&note, &other_root.body())),
            Err(CheckpointError::InvalidSignature)
        );

        let signature_start = note.rfind(' ').unwrap() + 1;
        let mut blob = BASE64_STANDARD
            .decode(note[signature_start..].trim_end())
            .unwrap();
        blob[10] ^= 1;
        let tampered_signature = format!(
            "{}{}\n",
            &note[..signature_start],
            BASE64_STANDARD.encode(&blob)
        );
        assert_eq!(
            verifier.verify(&tampered_signature),
            Err(CheckpointError::InvalidSignature)
        );

        let truncated_signature = format!(
            "{}{}\n",
            &note[..signature_start],
            BASE64_STANDARD.encode(&blob[..60])
        );
        assert_eq!(
            verifier.verify(&truncated_signature),
            Err(CheckpointError::InvalidSignature)
        );
    }

    #[test]
    fn note_signed_by_another_key_is_rejected() {
        let impostor = CheckpointSigner::new(ORIGIN, signing_key(8)).unwrap();
        let note = impostor.sign(&checkpoint()).unwrap();
        assert_eq!(
            signer().verifier().verify(&note),
            Err(CheckpointError::NoTrustedSignature)
        );
        let other_name = CheckpointSigner::new("other.example/log", signing_key(7)).unwrap();
        let note = other_name.sign(&checkpoint()).unwrap();
        assert_eq!(
            signer().verifier().verify(&note),
            Err(CheckpointError::NoTrustedSignature)
        );
    }

    #[test]
    fn unknown_extra_signature_lines_are_ignored() {
        let note = signer().sign(&checkpoint()).unwrap();
        let witness = CheckpointSigner::new("witness.example/w1", signing_key(9)).unwrap();
        let witness_line = {
            let witness_note = witness.sign(&checkpoint()).unwrap();
            let separator = witness_note.rfind("\n\n").unwrap();
            witness_note[separator + 2..].to_owned()
        };
        let unparseable_key_line = "\u{2014} somebody.example/else AAAAAAAAAA==\n";
        let cosigned = format!("{note}{witness_line}{unparseable_key_line}");
        assert_eq!(signer().verifier().verify(&cosigned).unwrap(), checkpoint());
        let witness_first = format!("{}\n{witness_line}{}", checkpoint().body(), {
            let separator = note.rfind("\n\n").unwrap();
            &note[separator + 2..]
        });
        assert_eq!(
            signer().verifier().verify(&witness_first).unwrap(),
            checkpoint()
        );
    }

    #[test]
    fn extension_lines_are_signed_and_ignored() {
        let body = format!("{}extension one\nextension two\n", checkpoint().body());
        let note = signer().sign_note_text(&body);
        assert_eq!(signer().verifier().verify(&note).unwrap(), checkpoint());
    }

    #[test]
    fn malformed_bodies_are_rejected_even_when_validly_signed() {
        let root_base64 = BASE64_STANDARD.encode([0xab; 32]);
        let cases = [
            (
                format!("{ORIGIN}\n007\n{root_base64}\n"),
                CheckpointError::NonCanonicalTreeSize,
            ),
            (
                format!("{ORIGIN}\n+7\n{root_base64}\n"),
                CheckpointError::NonCanonicalTreeSize,
            ),
            (
                format!("{ORIGIN}\n18446744073709551616\n{root_base64}\n"),
                CheckpointError::NonCanonicalTreeSize,
            ),
            (
                format!("{ORIGIN}\n\n{root_base64}\n"),
                CheckpointError::NonCanonicalTreeSize,
            ),
            (
                format!("{ORIGIN}\n7\n{}\n", root_base64.trim_end_matches('=')),
                CheckpointError::InvalidRootHashBase64,
            ),
            (
                format!("{ORIGIN}\n7\n!!{}\n", &root_base64[2..]),
                CheckpointError::InvalidRootHashBase64,
            ),
            (
                format!("{ORIGIN}\n7\n{}\n", BASE64_STANDARD.encode([0xab; 31])),
                CheckpointError::WrongRootHashLength { length: 31 },
            ),
            (
                format!("bad origin\n7\n{root_base64}\n"),
                CheckpointError::InvalidOrigin,
            ),
            (
                format!("bad+origin\n7\n{root_base64}\n"),
                CheckpointError::InvalidOrigin,
            ),
            (
                format!("{ORIGIN}\n7\n"),
                CheckpointError::MalformedBody {
                    reason: "fewer than three lines",
                },
            ),
        ];
        let verifier = signer().verifier();
        for (body, expected_error) in cases {
            let note = signer().sign_note_text(&body);
            assert_eq!(verifier.verify(&note), Err(expected_error), "body {body:?}");
        }
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let note = signer().sign(&checkpoint()).unwrap();
        let verifier = signer().verifier();
        let malformed = [
            note.trim_end().to_owned(),
            note.replacen("\n\n", "\n", 1),
            note.replace('\u{2014}', "-"),
            note.replace("\u{2014} ", "\u{2014}"),
            format!("{note}\n"),
            note.replace('\n', "\r\n"),
            format!("{note}\u{2014} {ORIGIN} not-base64\n"),
            format!("{note}\u{2014} {ORIGIN} AAA=\n"),
        ];
        for candidate in malformed {
            assert!(
                matches!(
                    verifier.verify(&candidate),
                    Err(CheckpointError::MalformedNote { .. })
                ),
                "accepted {candidate:?}: {:?}",
                verifier.verify(&candidate)
            );
        }
        let too_many = format!(
            "{note}{}",
            "\u{2014} other.example/w AAAAAAAAAA==\n".repeat(MAXIMUM_SIGNATURE_LINES)
        );
        assert_eq!(
            verifier.verify(&too_many),
            Err(CheckpointError::MalformedNote {
                reason: "too many signature lines"
            })
        );
    }

    #[test]
    fn signing_refuses_bad_origins_and_key_names() {
        let mut bad = checkpoint();
        bad.origin = "two\nlines".to_owned();
        assert_eq!(signer().sign(&bad), Err(CheckpointError::InvalidOrigin));
        bad.origin = String::new();
        assert_eq!(signer().sign(&bad), Err(CheckpointError::InvalidOrigin));
        assert_eq!(
            CheckpointSigner::new("has space", signing_key(1)).unwrap_err(),
            CheckpointError::InvalidKeyName
        );
        assert_eq!(
            CheckpointSigner::new("has+plus", signing_key(1)).unwrap_err(),
            CheckpointError::InvalidKeyName
        );
        assert_eq!(
            CheckpointSigner::new("", signing_key(1)).unwrap_err(),
            CheckpointError::InvalidKeyName
        );
    }

    #[test]
    fn verifier_key_parsing_rejects_mangled_keys() {
        let good = GO_VERIFIER_KEY;
        assert!(CheckpointVerifier::from_verifier_key(good).is_ok());
        // Every proper substring of a valid key must fail, as in Go's TestNewVerifier.
        for start in 0..good.len() {
            for end in start + 1..=good.len() {
                if (start, end) == (0, good.len()) || !good.is_char_boundary(end) {
                    continue;
                }
                assert!(
                    CheckpointVerifier::from_verifier_key(&good[start..end]).is_err(),
                    "accepted {:?}",
                    &good[start..end]
                );
            }
        }
        assert_eq!(
            parse_verifier_key(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .unwrap_err(),
            CheckpointError::VerifierKeyIdMismatch
        );
        assert_eq!(
            parse_verifier_key(
                "PeterNeumannX+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .unwrap_err(),
            CheckpointError::VerifierKeyIdMismatch
        );
        assert_eq!(
            parse_verifier_key(
                "PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .unwrap_err(),
            CheckpointError::UnsupportedSignatureType {
                signature_type: 0x02
            }
        );
        // The base64 of a key may itself contain '+'.
        let signer = signer();
        let verifier_key = signer.verifier_key();
        let parsed = CheckpointVerifier::from_verifier_key(&verifier_key).unwrap();
        assert_eq!(parsed.verifier_key(), verifier_key);
    }

    #[test]
    fn debug_of_signer_shows_no_secret() {
        let debug = format!("{:?}", signer());
        assert!(debug.contains("5bdbd217"));
        assert!(!debug.contains("signing_key"));
        assert!(!debug.contains("7, 7"));
    }
}
