//! Protection of personal data in the case-event log: envelope encryption with per-subject
//! data keys, so that destroying a data key later (crypto-shredding) makes the personal data
//! unreadable while the log, which hashes the *ciphertext*, stays verifiable; and keyed blind
//! indexes for equality lookups (for example by resident identity number) without storing the
//! value.
//!
//! This module owns the byte layouts below. It does no I/O; key storage and the choice of key
//! ids belong to the caller. All AEAD is XChaCha20-Poly1305 (the IETF ChaCha20-Poly1305 with a
//! 24-byte extended nonce, draft-irtf-cfrg-xchacha) with a fresh random nonce from the operating
//! system per encryption; the 16-byte Poly1305 tag follows the ciphertext.
//!
//! # Sealed value (personal data stored in an event)
//!
//! ```text
//! offset  length  field
//! 0       1       format version, 0x01
//! 1       2       key id length L, unsigned big-endian, 1..=65535
//! 3       L       key id, UTF-8
//! 3+L     24      XChaCha20-Poly1305 nonce
//! 27+L    N+16    ciphertext of the N plaintext bytes, then the 16-byte tag
//! ```
//!
//! AEAD key: the data key. AEAD associated data: the first `3 + L` bytes of the sealed value
//! (format version, key id length, key id) followed by the caller's associated data (for
//! example the event id and field name, so a ciphertext cannot be moved to another event or
//! field). Including the length makes the split between key id and associated data
//! unambiguous.
//!
//! # Wrapped data key (a data key encrypted under the key-encryption key)
//!
//! ```text
//! offset  length  field
//! 0       1       format version, 0x01
//! 1       24      XChaCha20-Poly1305 nonce
//! 25      48      ciphertext of the 32-byte data key, then the 16-byte tag
//! ```
//!
//! Total 73 bytes. AEAD key: the key-encryption key. AEAD associated data: the format version
//! byte 0x01 followed by the key id's UTF-8 bytes, so a wrapped key only unwraps under the id
//! it was wrapped for.
//!
//! # Data key wrapped to the sealing public key (by a process that holds no secret)
//!
//! A process that must seal personal data but never open it (review, which seals home-visit
//! findings) holds only the [`SealingPublicKey`]: it creates a data key, seals with it, and
//! stores the data key encrypted to that public key, which only a holder of the key-encryption
//! key can decrypt. [`KeyEncryptionKey::unwrap`] opens both formats.
//!
//! The sealing key pair is derived from the key-encryption key, so operators keep one secret:
//!
//! ```text
//! sealing private key = HKDF-SHA256(salt = none (RFC 5869: 32 zero bytes),
//!                                   IKM = key-encryption key (32 bytes),
//!                                   info = "sunshine-eventlog sealing key v1", L = 32)
//! sealing public key  = X25519(sealing private key, 9)      (RFC 7748; the scalar is clamped)
//! ```
//!
//! The wrap is RFC 9180 HPKE in base mode with the suite DHKEM(X25519, HKDF-SHA256) (KEM id
//! 0x0020), HKDF-SHA256 (KDF id 0x0001) and ChaCha20-Poly1305 (AEAD id 0x0003): a fresh
//! ephemeral key pair per wrap; the KEM's key derivation binds the ephemeral and the recipient
//! public key, and an all-zero X25519 shared secret is refused.
//!
//! ```text
//! offset  length  field
//! 0       1       format version, 0x02
//! 1       32      HPKE encapsulated key (the ephemeral X25519 public key)
//! 33      48      HPKE ciphertext of the 32-byte data key, then the 16-byte tag
//! ```
//!
//! Total 81 bytes. HPKE `info`: the UTF-8 bytes of `"sunshine-eventlog wrapped data key"`,
//! then the format version byte 0x02, then the key id's UTF-8 bytes (the label has a fixed
//! length, so the split is unambiguous), so a wrapped key only unwraps under the id it was
//! wrapped for. HPKE `aad`: empty. (The key id goes into `info` rather than `aad` so that
//! HPKE implementations whose single-shot API takes no `aad` can produce and check the
//! format too.)
//!
//! # Blind index
//!
//! ```text
//! blind index = HMAC-SHA256(blind index key (32 bytes), domain UTF-8 || 0x00 || value UTF-8)
//! ```
//!
//! The domain (for example `"resident-id"`) separates indexes of different kinds of value and
//! must not contain the byte 0x00.
//!
//! # Key encodings
//!
//! Keys given in configuration are 32 bytes in standard base64 with padding (44 characters).
//! A [`SealingPublicKey`] is the 32-byte X25519 public key (RFC 7748 u-coordinate,
//! little-endian) in the same encoding; one of low order (every X25519 with it is all-zero) or
//! not canonically encoded is refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use hpke::{Deserializable as _, Kem as _, Serializable as _};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Length in bytes of every symmetric key here.
pub const KEY_LENGTH: usize = 32;

/// Length in bytes of an XChaCha20-Poly1305 nonce.
pub const NONCE_LENGTH: usize = 24;

/// Length in bytes of a Poly1305 tag.
pub const TAG_LENGTH: usize = 16;

/// First byte of a sealed value.
pub const SEALED_VALUE_FORMAT_VERSION: u8 = 0x01;

/// First byte of a wrapped data key.
pub const WRAPPED_KEY_FORMAT_VERSION: u8 = 0x01;

/// Length in bytes of a wrapped data key.
pub const WRAPPED_KEY_LENGTH: usize = 1 + NONCE_LENGTH + KEY_LENGTH + TAG_LENGTH;

/// First byte of a data key wrapped to the [`SealingPublicKey`].
pub const PUBLIC_WRAPPED_KEY_FORMAT_VERSION: u8 = 0x02;

/// Length in bytes of an X25519 public key (and of an HPKE encapsulated key of this suite).
pub const PUBLIC_KEY_LENGTH: usize = 32;

/// Length in bytes of a data key wrapped to the [`SealingPublicKey`].
pub const PUBLIC_WRAPPED_KEY_LENGTH: usize = 1 + PUBLIC_KEY_LENGTH + KEY_LENGTH + TAG_LENGTH;

/// HKDF `info` that derives the sealing private key from the key-encryption key.
const SEALING_KEY_DERIVATION_LABEL: &[u8] = b"sunshine-eventlog sealing key v1";

/// First bytes of the HPKE `info` of a public-key wrap (the version and key id follow).
const PUBLIC_WRAP_INFO_LABEL: &[u8] = b"sunshine-eventlog wrapped data key";

/// The HPKE suite of public-key wraps (RFC 9180 ids 0x0020, 0x0001, 0x0003).
type SealingKem = hpke::kem::X25519HkdfSha256;
type SealingKdf = hpke::kdf::HkdfSha256;
type SealingAead = hpke::aead::ChaCha20Poly1305;

/// Bytes before the key id in a sealed value: format version and key id length.
const SEALED_VALUE_FIXED_HEADER_LENGTH: usize = 3;

/// Byte that separates the domain from the value in a blind index input.
const BLIND_INDEX_DOMAIN_SEPARATOR: u8 = 0x00;

/// HMAC-SHA256 block size; see [`blind_index`] for why it matters.
const SHA256_BLOCK_LENGTH: usize = 64;

/// Why a cryptographic operation failed.
///
/// Decryption failures are deliberately not subdivided: a wrong key, a wrong key id, wrong
/// associated data and tampering are indistinguishable to an AEAD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the operating system random number generator failed")]
    RandomnessUnavailable,
    #[error("key is not valid standard base64")]
    InvalidKeyBase64,
    #[error("key is {length} bytes, expected 32")]
    WrongKeyLength { length: usize },
    #[error("key id must not be empty")]
    EmptyKeyId,
    #[error("key id is {length} bytes, at most 65535 allowed")]
    KeyIdTooLong { length: usize },
    #[error("unsupported format version {version:#04x}")]
    UnsupportedFormatVersion { version: u8 },
    #[error("value is truncated")]
    Truncated,
    #[error("wrapped key is {length} bytes, expected 73 (format 0x01) or 81 (format 0x02)")]
    WrongWrappedKeyLength { length: usize },
    #[error("public key is of low order or not canonically encoded")]
    WeakPublicKey,
    #[error("key id is not valid UTF-8")]
    KeyIdNotUtf8,
    #[error("plaintext is too long to encrypt")]
    EncryptionFailed,
    #[error("decryption failed: wrong key, key id or associated data, or the value was altered")]
    DecryptionFailed,
}

fn random_bytes<const LENGTH: usize>() -> Result<[u8; LENGTH], CryptoError> {
    let mut bytes = [0u8; LENGTH];
    getrandom::fill(&mut bytes).map_err(|_| CryptoError::RandomnessUnavailable)?;
    Ok(bytes)
}

fn decode_base64_key(key_base64: &str) -> Result<Zeroizing<[u8; KEY_LENGTH]>, CryptoError> {
    let decoded = Zeroizing::new(
        BASE64_STANDARD
            .decode(key_base64.trim())
            .map_err(|_| CryptoError::InvalidKeyBase64)?,
    );
    let mut key = Zeroizing::new([0u8; KEY_LENGTH]);
    if decoded.len() != KEY_LENGTH {
        return Err(CryptoError::WrongKeyLength {
            length: decoded.len(),
        });
    }
    key.copy_from_slice(&decoded);
    Ok(key)
}

fn validate_key_id(key_id: &str) -> Result<u16, CryptoError> {
    if key_id.is_empty() {
        return Err(CryptoError::EmptyKeyId);
    }
    u16::try_from(key_id.len()).map_err(|_| CryptoError::KeyIdTooLong {
        length: key_id.len(),
    })
}

fn cipher_for(key: &[u8; KEY_LENGTH]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key).into())
}

/// A per-subject data key (for example one per household), 32 random bytes.
///
/// Zeroed when dropped. Stored only wrapped by the [`KeyEncryptionKey`]; destroying every
/// wrapped copy shreds the data sealed with it.
pub struct DataKey {
    bytes: Zeroizing<[u8; KEY_LENGTH]>,
}

impl DataKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(random_bytes::<KEY_LENGTH>()?);
        Ok(Self { bytes })
    }

    /// A data key from known bytes (tests, migrations).
    pub fn from_bytes(mut bytes: [u8; KEY_LENGTH]) -> Self {
        let key = Self {
            bytes: Zeroizing::new(bytes),
        };
        bytes.zeroize();
        key
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DataKey(<redacted>)")
    }
}

/// The master key from configuration that wraps (encrypts) data keys. Zeroed when dropped.
pub struct KeyEncryptionKey {
    bytes: Zeroizing<[u8; KEY_LENGTH]>,
}

impl KeyEncryptionKey {
    /// Reads 32 bytes of standard base64 (surrounding whitespace is ignored).
    pub fn from_base64(key_base64: &str) -> Result<Self, CryptoError> {
        Ok(Self {
            bytes: decode_base64_key(key_base64)?,
        })
    }

    pub fn from_bytes(mut bytes: [u8; KEY_LENGTH]) -> Self {
        let key = Self {
            bytes: Zeroizing::new(bytes),
        };
        bytes.zeroize();
        key
    }

    /// Encrypts `data_key` for storage under `key_id` (layout in the module documentation).
    pub fn wrap(&self, data_key: &DataKey, key_id: &str) -> Result<Vec<u8>, CryptoError> {
        validate_key_id(key_id)?;
        let nonce_bytes = random_bytes::<NONCE_LENGTH>()?;
        let associated_data = wrapped_key_associated_data(key_id);
        let ciphertext = cipher_for(&self.bytes)
            .encrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: data_key.bytes.as_slice(),
                    aad: &associated_data,
                },
            )
            .map_err(|_| CryptoError::EncryptionFailed)?;
        let mut wrapped = Vec::with_capacity(WRAPPED_KEY_LENGTH);
        wrapped.push(WRAPPED_KEY_FORMAT_VERSION);
        wrapped.extend_from_slice(&nonce_bytes);
        wrapped.extend_from_slice(&ciphertext);
        debug_assert_eq!(wrapped.len(), WRAPPED_KEY_LENGTH);
        Ok(wrapped)
    }

    /// The public key that data keys are wrapped to by processes that may seal but not open
    /// (derivation in the module documentation). The same for the same key-encryption key.
    pub fn sealing_public_key(&self) -> SealingPublicKey {
        let public_key = SealingKem::sk_to_pk(&self.sealing_private_key());
        let mut bytes = [0u8; PUBLIC_KEY_LENGTH];
        bytes.copy_from_slice(&public_key.to_bytes());
        // A clamped scalar times the base point is never of low order, nor non-canonical.
        SealingPublicKey { bytes }
    }

    fn sealing_private_key(&self) -> <SealingKem as hpke::Kem>::PrivateKey {
        let mut private_key_bytes = Zeroizing::new([0u8; KEY_LENGTH]);
        let derivation = Hkdf::<Sha256>::new(None, self.bytes.as_slice());
        derivation
            .expand(
                SEALING_KEY_DERIVATION_LABEL,
                private_key_bytes.as_mut_slice(),
            )
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        // Deserialising clamps the scalar (RFC 9180 §7.1.2); it fails only on a wrong length.
        <SealingKem as hpke::Kem>::PrivateKey::from_bytes(private_key_bytes.as_slice())
            .expect("an X25519 private key is 32 bytes")
    }

    /// Decrypts a data key wrapped by [`KeyEncryptionKey::wrap`] or [`SealingPublicKey::wrap`]
    /// (to this key's [`KeyEncryptionKey::sealing_public_key`]) under the same `key_id`.
    pub fn unwrap(&self, wrapped: &[u8], key_id: &str) -> Result<DataKey, CryptoError> {
        validate_key_id(key_id)?;
        match wrapped.first() {
            Some(&PUBLIC_WRAPPED_KEY_FORMAT_VERSION) => self.unwrap_public(wrapped, key_id),
            Some(&WRAPPED_KEY_FORMAT_VERSION) | None => self.unwrap_symmetric(wrapped, key_id),
            Some(&version) => Err(CryptoError::UnsupportedFormatVersion { version }),
        }
    }

    fn unwrap_symmetric(&self, wrapped: &[u8], key_id: &str) -> Result<DataKey, CryptoError> {
        if wrapped.len() != WRAPPED_KEY_LENGTH {
            return Err(CryptoError::WrongWrappedKeyLength {
                length: wrapped.len(),
            });
        }
        let Some((&version, rest)) = wrapped.split_first() else {
            return Err(CryptoError::Truncated);
        };
        if version != WRAPPED_KEY_FORMAT_VERSION {
            return Err(CryptoError::UnsupportedFormatVersion { version });
        }
        let Some((nonce_bytes, ciphertext)) = rest.split_first_chunk::<NONCE_LENGTH>() else {
            return Err(CryptoError::Truncated);
        };
        let associated_data = wrapped_key_associated_data(key_id);
        let plaintext = Zeroizing::new(
            cipher_for(&self.bytes)
                .decrypt(
                    &XNonce::from(*nonce_bytes),
                    Payload {
                        msg: ciphertext,
                        aad: &associated_data,
                    },
                )
                .map_err(|_| CryptoError::DecryptionFailed)?,
        );
        data_key_from_plaintext(&plaintext)
    }

    fn unwrap_public(&self, wrapped: &[u8], key_id: &str) -> Result<DataKey, CryptoError> {
        if wrapped.len() != PUBLIC_WRAPPED_KEY_LENGTH {
            return Err(CryptoError::WrongWrappedKeyLength {
                length: wrapped.len(),
            });
        }
        let Some((encapsulated_key, ciphertext)) = wrapped[1..].split_at_checked(PUBLIC_KEY_LENGTH)
        else {
            return Err(CryptoError::Truncated);
        };
        let encapsulated_key = <SealingKem as hpke::Kem>::EncappedKey::from_bytes(encapsulated_key)
            .map_err(|_| CryptoError::DecryptionFailed)?;
        // A tampered encapsulated key of low order gives the all-zero shared secret, which HPKE
        // refuses (a decapsulation error); like any other tampering it is a failed decryption.
        let plaintext = Zeroizing::new(
            hpke::single_shot_open::<SealingAead, SealingKdf, SealingKem>(
                &hpke::OpModeR::Base,
                &self.sealing_private_key(),
                &encapsulated_key,
                &public_wrap_info(key_id),
                ciphertext,
                b"",
            )
            .map_err(|_| CryptoError::DecryptionFailed)?,
        );
        data_key_from_plaintext(&plaintext)
    }
}

fn data_key_from_plaintext(plaintext: &[u8]) -> Result<DataKey, CryptoError> {
    let mut bytes = Zeroizing::new([0u8; KEY_LENGTH]);
    if plaintext.len() != KEY_LENGTH {
        return Err(CryptoError::DecryptionFailed);
    }
    bytes.copy_from_slice(plaintext);
    Ok(DataKey { bytes })
}

fn public_wrap_info(key_id: &str) -> Vec<u8> {
    let mut info = Vec::with_capacity(PUBLIC_WRAP_INFO_LABEL.len() + 1 + key_id.len());
    info.extend_from_slice(PUBLIC_WRAP_INFO_LABEL);
    info.push(PUBLIC_WRAPPED_KEY_FORMAT_VERSION);
    info.extend_from_slice(key_id.as_bytes());
    info
}

/// The public half of the key pair derived from the [`KeyEncryptionKey`]
/// ([`KeyEncryptionKey::sealing_public_key`]): an X25519 public key. Data keys wrapped to it
/// ([`SealingPublicKey::wrap`]) unwrap only with the key-encryption key, so a process that
/// holds just this can seal personal data and open none. Not secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SealingPublicKey {
    bytes: [u8; PUBLIC_KEY_LENGTH],
}

impl SealingPublicKey {
    /// Reads 32 bytes of standard base64 (surrounding whitespace is ignored); refuses a key of
    /// low order or not canonically encoded ([`SealingPublicKey::from_bytes`]).
    pub fn from_base64(key_base64: &str) -> Result<Self, CryptoError> {
        let decoded = BASE64_STANDARD
            .decode(key_base64.trim())
            .map_err(|_| CryptoError::InvalidKeyBase64)?;
        let bytes: [u8; PUBLIC_KEY_LENGTH] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| CryptoError::WrongKeyLength {
                    length: decoded.len(),
                })?;
        Self::from_bytes(bytes)
    }

    /// An X25519 public key (RFC 7748 u-coordinate, little-endian). Refuses a u-coordinate not
    /// below 2^255 - 19 or with the top bit set (not canonical), and one of low order: X25519
    /// with a clamped scalar (a multiple of the cofactor 8) makes every such point zero, so each
    /// wrap to it would have the all-zero shared secret.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LENGTH]) -> Result<Self, CryptoError> {
        if !is_canonical_u_coordinate(&bytes) {
            return Err(CryptoError::WeakPublicKey);
        }
        // Any clamped scalar will do: it kills exactly the components of order dividing 8.
        let probe = MontgomeryPoint(bytes).mul_clamped([0x5a; 32]);
        if probe.to_bytes() == [0u8; 32] {
            return Err(CryptoError::WeakPublicKey);
        }
        Ok(Self { bytes })
    }

    /// Standard base64 with padding, as [`SealingPublicKey::from_base64`] reads it.
    pub fn to_base64(&self) -> String {
        BASE64_STANDARD.encode(self.bytes)
    }

    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LENGTH] {
        &self.bytes
    }

    /// Encrypts `data_key` for storage under `key_id` so that only the holder of the
    /// key-encryption key this was derived from can unwrap it (layout in the module
    /// documentation). A fresh ephemeral key per call.
    pub fn wrap(&self, data_key: &DataKey, key_id: &str) -> Result<Vec<u8>, CryptoError> {
        validate_key_id(key_id)?;
        let recipient = <SealingKem as hpke::Kem>::PublicKey::from_bytes(&self.bytes)
            .map_err(|_| CryptoError::WeakPublicKey)?;
        let mut randomness = SeededRandomness::from_operating_system()?;
        let (encapsulated_key, ciphertext) =
            hpke::single_shot_seal_with_rng::<SealingAead, SealingKdf, SealingKem>(
                &hpke::OpModeS::Base,
                &recipient,
                &public_wrap_info(key_id),
                data_key.bytes.as_slice(),
                b"",
                &mut randomness,
            )
            .map_err(|_| CryptoError::EncryptionFailed)?;
        let mut wrapped = Vec::with_capacity(PUBLIC_WRAPPED_KEY_LENGTH);
        wrapped.push(PUBLIC_WRAPPED_KEY_FORMAT_VERSION);
        wrapped.extend_from_slice(&encapsulated_key.to_bytes());
        wrapped.extend_from_slice(&ciphertext);
        debug_assert_eq!(wrapped.len(), PUBLIC_WRAPPED_KEY_LENGTH);
        Ok(wrapped)
    }
}

impl std::fmt::Debug for SealingPublicKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SealingPublicKey({})", self.to_base64())
    }
}

/// Whether 32 little-endian bytes are a u-coordinate below 2^255 - 19 (with the top bit clear).
fn is_canonical_u_coordinate(bytes: &[u8; PUBLIC_KEY_LENGTH]) -> bool {
    // Values at or above p = 2^255 - 19 with the top bit clear are 0x7f ff .. ff then a lowest
    // byte of at least 0xed.
    if bytes[31] & 0x80 != 0 {
        return false;
    }
    let at_least_p =
        bytes[31] == 0x7f && bytes[1..31].iter().all(|&byte| byte == 0xff) && bytes[0] >= 0xed;
    !at_least_p
}

/// The random bytes HPKE asks for (32, the ephemeral key's), drawn so that a failing operating
/// system generator is an error before HPKE runs rather than a panic inside it: a 32-byte seed
/// from the operating system, output as HMAC-SHA256(seed, counter (u64 big-endian)) blocks.
struct SeededRandomness {
    seed: Zeroizing<[u8; KEY_LENGTH]>,
    counter: u64,
}

impl SeededRandomness {
    fn from_operating_system() -> Result<Self, CryptoError> {
        Ok(Self {
            seed: Zeroizing::new(random_bytes::<KEY_LENGTH>()?),
            counter: 0,
        })
    }
}

impl hpke::rand_core::TryRng for SeededRandomness {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in destination.chunks_mut(KEY_LENGTH) {
            let mut block_sized_key = Zeroizing::new([0u8; SHA256_BLOCK_LENGTH]);
            block_sized_key[..KEY_LENGTH].copy_from_slice(self.seed.as_slice());
            let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*block_sized_key).into());
            mac.update(&self.counter.to_be_bytes());
            self.counter += 1;
            let block = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for SeededRandomness {}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("KeyEncryptionKey(<redacted>)")
    }
}

fn wrapped_key_associated_data(key_id: &str) -> Vec<u8> {
    let mut associated_data = Vec::with_capacity(1 + key_id.len());
    associated_data.push(WRAPPED_KEY_FORMAT_VERSION);
    associated_data.extend_from_slice(key_id.as_bytes());
    associated_data
}

/// Encrypts `plaintext` under `key`, recording `key_id` in the clear so the reader knows which
/// key to fetch (layout in the module documentation). `associated_data` is authenticated but
/// not stored; [`open`] needs the same bytes.
pub fn seal(
    key: &DataKey,
    key_id: &str,
    plaintext: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key_id_length = validate_key_id(key_id)?;
    let nonce_bytes = random_bytes::<NONCE_LENGTH>()?;

    let header_length = SEALED_VALUE_FIXED_HEADER_LENGTH + key_id.len();
    let mut sealed =
        Vec::with_capacity(header_length + NONCE_LENGTH + plaintext.len() + TAG_LENGTH);
    sealed.push(SEALED_VALUE_FORMAT_VERSION);
    sealed.extend_from_slice(&key_id_length.to_be_bytes());
    sealed.extend_from_slice(key_id.as_bytes());

    let aead_associated_data = sealed_value_associated_data(&sealed, associated_data);
    let ciphertext = cipher_for(&key.bytes)
        .encrypt(
            &XNonce::from(nonce_bytes),
            Payload {
                msg: plaintext,
                aad: &aead_associated_data,
            },
        )
        .map_err(|_| CryptoError::EncryptionFailed)?;
    sealed.extend_from_slice(&nonce_bytes);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

fn sealed_value_associated_data(header: &[u8], associated_data: &[u8]) -> Vec<u8> {
    let mut aead_associated_data = Vec::with_capacity(header.len() + associated_data.len());
    aead_associated_data.extend_from_slice(header);
    aead_associated_data.extend_from_slice(associated_data);
    aead_associated_data
}

/// The parts of a sealed value, borrowed from it.
struct SealedValueParts<'sealed> {
    header: &'sealed [u8],
    key_id: &'sealed str,
    nonce: &'sealed [u8; NONCE_LENGTH],
    ciphertext_with_tag: &'sealed [u8],
}

fn split_sealed_value(sealed: &[u8]) -> Result<SealedValueParts<'_>, CryptoError> {
    let Some((fixed_header, after_fixed_header)) =
        sealed.split_first_chunk::<SEALED_VALUE_FIXED_HEADER_LENGTH>()
    else {
        return Err(CryptoError::Truncated);
    };
    let [version, length_high, length_low] = *fixed_header;
    if version != SEALED_VALUE_FORMAT_VERSION {
        return Err(CryptoError::UnsupportedFormatVersion { version });
    }
    let key_id_length = usize::from(u16::from_be_bytes([length_high, length_low]));
    if key_id_length == 0 {
        return Err(CryptoError::EmptyKeyId);
    }
    if after_fixed_header.len() < key_id_length + NONCE_LENGTH + TAG_LENGTH {
        return Err(CryptoError::Truncated);
    }
    let (key_id_bytes, after_key_id) = after_fixed_header.split_at(key_id_length);
    let key_id = std::str::from_utf8(key_id_bytes).map_err(|_| CryptoError::KeyIdNotUtf8)?;
    let Some((nonce, ciphertext_with_tag)) = after_key_id.split_first_chunk::<NONCE_LENGTH>()
    else {
        return Err(CryptoError::Truncated);
    };
    Ok(SealedValueParts {
        header: &sealed[..SEALED_VALUE_FIXED_HEADER_LENGTH + key_id_length],
        key_id,
        nonce,
        ciphertext_with_tag,
    })
}

/// The key id recorded in a sealed value, read without decrypting (and so not authenticated
/// until [`open`] succeeds).
pub fn sealed_key_id(sealed: &[u8]) -> Result<&str, CryptoError> {
    Ok(split_sealed_value(sealed)?.key_id)
}

/// Decrypts a value produced by [`seal`] with the same key and associated data.
pub fn open(key: &DataKey, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let parts = split_sealed_value(sealed)?;
    let aead_associated_data = sealed_value_associated_data(parts.header, associated_data);
    cipher_for(&key.bytes)
        .decrypt(
            &XNonce::from(*parts.nonce),
            Payload {
                msg: parts.ciphertext_with_tag,
                aad: &aead_associated_data,
            },
        )
        .map_err(|_| CryptoError::DecryptionFailed)
}

/// The key of the blind indexes, 32 bytes from configuration. Zeroed when dropped.
pub struct BlindIndexKey {
    bytes: Zeroizing<[u8; KEY_LENGTH]>,
}

impl BlindIndexKey {
    /// Reads 32 bytes of standard base64 (surrounding whitespace is ignored).
    pub fn from_base64(key_base64: &str) -> Result<Self, CryptoError> {
        Ok(Self {
            bytes: decode_base64_key(key_base64)?,
        })
    }

    pub fn from_bytes(mut bytes: [u8; KEY_LENGTH]) -> Self {
        let key = Self {
            bytes: Zeroizing::new(bytes),
        };
        bytes.zeroize();
        key
    }
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BlindIndexKey(<redacted>)")
    }
}

/// `HMAC-SHA256(key, domain || 0x00 || value)`: a deterministic, keyed stand-in for `value`
/// that supports equality lookups. `domain` must not contain NUL.
pub fn blind_index(key: &BlindIndexKey, domain: &str, value: &str) -> [u8; 32] {
    debug_assert!(
        !domain.as_bytes().contains(&BLIND_INDEX_DOMAIN_SEPARATOR),
        "blind index domain must not contain NUL"
    );
    // HMAC pads a key shorter than the hash block with zero bytes (RFC 2104), so the 32-byte
    // key padded to the 64-byte block is the same HMAC key; the fixed-size constructor cannot
    // fail, unlike `new_from_slice`.
    let mut block_sized_key = Zeroizing::new([0u8; SHA256_BLOCK_LENGTH]);
    block_sized_key[..KEY_LENGTH].copy_from_slice(key.bytes.as_slice());
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*block_sized_key).into());
    mac.update(domain.as_bytes());
    mac.update(&[BLIND_INDEX_DOMAIN_SEPARATOR]);
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY_ID: &str = "household/4f1c2a/v1";
    const ASSOCIATED_DATA: &[u8] = b"event 0195f0c8 field resident_name";

    fn data_key(byte: u8) -> DataKey {
        DataKey::from_bytes([byte; KEY_LENGTH])
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn sealed_value_round_trips_and_has_the_documented_layout() {
        let key = DataKey::generate().unwrap();
        let plaintext = "张三, 110101199003074578".as_bytes();
        let sealed = seal(&key, KEY_ID, plaintext, ASSOCIATED_DATA).unwrap();

        assert_eq!(sealed[0], 0x01);
        assert_eq!(&sealed[1..3], &(KEY_ID.len() as u16).to_be_bytes());
        assert_eq!(&sealed[3..3 + KEY_ID.len()], KEY_ID.as_bytes());
        assert_eq!(
            sealed.len(),
            3 + KEY_ID.len() + NONCE_LENGTH + plaintext.len() + TAG_LENGTH
        );
        assert_eq!(sealed_key_id(&sealed).unwrap(), KEY_ID);
        assert_eq!(open(&key, &sealed, ASSOCIATED_DATA).unwrap(), plaintext);

        let empty = seal(&key, KEY_ID, b"", b"").unwrap();
        assert_eq!(open(&key, &empty, b"").unwrap(), b"");
    }

    #[test]
    fn sealing_twice_uses_fresh_nonces() {
        let key = data_key(1);
        let first = seal(&key, KEY_ID, b"same", ASSOCIATED_DATA).unwrap();
        let second = seal(&key, KEY_ID, b"same", ASSOCIATED_DATA).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn sealed_value_matches_an_independent_implementation() {
        // The nonce is random, so re-encrypt the produced value's nonce with the RustCrypto
        // primitive directly, spelling out the documented associated data by hand.
        let key = data_key(3);
        let sealed = seal(&key, "k1", b"secret", b"ad").unwrap();
        let nonce: [u8; NONCE_LENGTH] = sealed[5..29].try_into().unwrap();
        let expected_ciphertext = XChaCha20Poly1305::new(&[3u8; 32].into())
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: b"secret",
                    aad: b"\x01\x00\x02k1ad",
                },
            )
            .unwrap();
        assert_eq!(&sealed[29..], expected_ciphertext.as_slice());
    }

    #[test]
    fn opening_fails_with_wrong_key_key_id_associated_data_or_tampering() {
        let key = data_key(1);
        let sealed = seal(&key, KEY_ID, b"personal data", ASSOCIATED_DATA).unwrap();

        assert_eq!(
            open(&data_key(2), &sealed, ASSOCIATED_DATA),
            Err(CryptoError::DecryptionFailed)
        );
        assert_eq!(
            open(&key, &sealed, b"event 0195f0c8 field resident_addr"),
            Err(CryptoError::DecryptionFailed)
        );
        assert_eq!(open(&key, &sealed, b""), Err(CryptoError::DecryptionFailed));

        let mut other_key_id = sealed.clone();
        *other_key_id.get_mut(3 + KEY_ID.len() - 1).unwrap() = b'2';
        assert_eq!(sealed_key_id(&other_key_id).unwrap(), "household/4f1c2a/v2");
        assert_eq!(
            open(&key, &other_key_id, ASSOCIATED_DATA),
            Err(CryptoError::DecryptionFailed)
        );

        for position in [3 + KEY_ID.len(), sealed.len() - 20, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[position] ^= 0x01;
            assert_eq!(
                open(&key, &tampered, ASSOCIATED_DATA),
                Err(CryptoError::DecryptionFailed),
                "byte {position}"
            );
        }

        // Moving bytes between key id and associated data must not verify either.
        let shifted = seal(&key, "ab", b"x", b"c").unwrap();
        let mut relabelled = vec![0x01, 0x00, 0x01, b'a'];
        relabelled.extend_from_slice(&shifted[5..]);
        assert_eq!(
            open(&key, &relabelled, b"bc"),
            Err(CryptoError::DecryptionFailed)
        );
    }

    #[test]
    fn malformed_sealed_values_are_rejected_before_decryption() {
        let key = data_key(1);
        let sealed = seal(&key, KEY_ID, b"x", b"").unwrap();
        assert_eq!(sealed_key_id(&[]), Err(CryptoError::Truncated));
        assert_eq!(sealed_key_id(&sealed[..2]), Err(CryptoError::Truncated));
        assert_eq!(
            open(&key, &sealed[..sealed.len() - 2], b""),
            Err(CryptoError::Truncated)
        );
        let mut other_version = sealed.clone();
        other_version[0] = 0x02;
        assert_eq!(
            sealed_key_id(&other_version),
            Err(CryptoError::UnsupportedFormatVersion { version: 0x02 })
        );
        let mut not_utf8 = sealed.clone();
        not_utf8[3] = 0xff;
        assert_eq!(sealed_key_id(&not_utf8), Err(CryptoError::KeyIdNotUtf8));
        assert_eq!(
            sealed_key_id(&[0x01, 0x00, 0x00]),
            Err(CryptoError::EmptyKeyId)
        );
    }

    #[test]
    fn key_ids_are_validated_when_sealing() {
        let key = data_key(1);
        assert_eq!(seal(&key, "", b"x", b""), Err(CryptoError::EmptyKeyId));
        let long_key_id = "k".repeat(65_536);
        assert_eq!(
            seal(&key, &long_key_id, b"x", b""),
            Err(CryptoError::KeyIdTooLong { length: 65_536 })
        );
        let longest_key_id = "k".repeat(65_535);
        let sealed = seal(&key, &longest_key_id, b"x", b"").unwrap();
        assert_eq!(open(&key, &sealed, b"").unwrap(), b"x");
    }

    #[test]
    fn wrapped_keys_round_trip_and_fail_with_the_wrong_kek_or_key_id() {
        let key_encryption_key = KeyEncryptionKey::from_bytes([9u8; KEY_LENGTH]);
        let key = DataKey::generate().unwrap();
        let wrapped = key_encryption_key.wrap(&key, KEY_ID).unwrap();
        assert_eq!(wrapped.len(), WRAPPED_KEY_LENGTH);
        assert_eq!(wrapped.len(), 73);
        assert_eq!(wrapped[0], 0x01);

        let unwrapped = key_encryption_key.unwrap(&wrapped, KEY_ID).unwrap();
        let sealed = seal(&key, KEY_ID, b"round trip", b"").unwrap();
        assert_eq!(open(&unwrapped, &sealed, b"").unwrap(), b"round trip");

        let other_key_encryption_key = KeyEncryptionKey::from_bytes([10u8; KEY_LENGTH]);
        assert_eq!(
            other_key_encryption_key
                .unwrap(&wrapped, KEY_ID)
                .unwrap_err(),
            CryptoError::DecryptionFailed
        );
        assert_eq!(
            key_encryption_key
                .unwrap(&wrapped, "household/4f1c2a/v2")
                .unwrap_err(),
            CryptoError::DecryptionFailed
        );
        let mut tampered = wrapped.clone();
        tampered[40] ^= 0x80;
        assert_eq!(
            key_encryption_key.unwrap(&tampered, KEY_ID).unwrap_err(),
            CryptoError::DecryptionFailed
        );
        assert_eq!(
            key_encryption_key
                .unwrap(&wrapped[..72], KEY_ID)
                .unwrap_err(),
            CryptoError::WrongWrappedKeyLength { length: 72 }
        );
        let mut other_version = wrapped.clone();
        other_version[0] = 0x07;
        assert_eq!(
            key_encryption_key
                .unwrap(&other_version, KEY_ID)
                .unwrap_err(),
            CryptoError::UnsupportedFormatVersion { version: 0x07 }
        );
    }

    /// A data key wrapped by an independent HPKE implementation (Python `cryptography` 48,
    /// `hpke.Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305).encrypt`) to the
    /// sealing public key of the KEK `[9; 32]`, whose private key came from that library's HKDF
    /// with the documented label; the info is the documented label, 0x02 and the key id.
    const PUBLIC_WRAP_TEST_KEY_ID: &str = "dk-0195f0c8-7d3a-7b2e-9c41-5a6b7c8d9e0f";
    const PUBLIC_WRAP_TEST_VECTOR: &str = "02c8efae6b3550e2c972d63fde1476a93fed6adafae9865f3e5955aa2875a92731860289ecee0a12dcf3471f3c7deddc98bf8674af50dd4037feba502e00f0486fec586175e16dbb061627284bd84b5006";

    fn from_hex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|index| u8::from_str_radix(&hex[index..index + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_sealing_public_key_is_derived_from_the_kek_stably() {
        // The same derivation by Python `cryptography`: HKDF(SHA256(), 32, salt=None,
        // info=b"sunshine-eventlog sealing key v1").derive(kek), then X25519 public key.
        let key_encryption_key = KeyEncryptionKey::from_bytes([9u8; KEY_LENGTH]);
        let public_key = key_encryption_key.sealing_public_key();
        assert_eq!(
            hex(public_key.as_bytes()),
            "cbafd89dd2cf7cd555f9c128783cfbeaa06b3a8284aeaf8cd36fc70eb75a6b09"
        );
        assert_eq!(
            public_key.to_base64(),
            "y6/YndLPfNVV+cEoeDz76qBrOoKErq+M02/HDrdaawk="
        );
        assert_eq!(
            KeyEncryptionKey::from_bytes([9u8; KEY_LENGTH]).sealing_public_key(),
            public_key
        );
        let other = KeyEncryptionKey::from_bytes([10u8; KEY_LENGTH]).sealing_public_key();
        assert_eq!(
            hex(other.as_bytes()),
            "a0ded1f2919a5abd988e42c40a47137b3190f58abccc0e6e74edb294932c8051"
        );
        assert_ne!(other, public_key);
        // Not just the KEK's bytes, nor the base point.
        assert_ne!(public_key.as_bytes(), &[9u8; 32]);
        assert_ne!(public_key.as_bytes()[0], 9);
    }

    #[test]
    fn the_sealing_public_key_round_trips_through_base64_and_may_be_printed() {
        let public_key = KeyEncryptionKey::from_bytes([9u8; KEY_LENGTH]).sealing_public_key();
        let parsed =
            SealingPublicKey::from_base64(&format!(" {}\n", public_key.to_base64())).unwrap();
        assert_eq!(parsed, public_key);
        assert_eq!(
            format!("{public_key:?}"),
            "SealingPublicKey(y6/YndLPfNVV+cEoeDz76qBrOoKErq+M02/HDrdaawk=)"
        );
        assert_eq!(
            SealingPublicKey::from_base64("not base64!").unwrap_err(),
            CryptoError::InvalidKeyBase64
        );
        assert_eq!(
            SealingPublicKey::from_base64(&BASE64_STANDARD.encode([5u8; 31])).unwrap_err(),
            CryptoError::WrongKeyLength { length: 31 }
        );
    }

    #[test]
    fn low_order_and_non_canonical_public_keys_are_refused() {
        // The u-coordinates of low order (every X25519 with them is all-zero): 0, 1 and p - 1
        // (orders 2 and 4, on the curve or its twist) and the two of order 8; then 0 and 1
        // encoded as p and p + 1; then the first five with the top bit set, which X25519
        // ignores. Python `cryptography`'s `exchange` refuses each of the first seven.
        let low_order = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "0100000000000000000000000000000000000000000000000000000000000080",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
        ];
        for point in low_order {
            let bytes: [u8; 32] = from_hex(point).try_into().unwrap();
            assert_eq!(
                SealingPublicKey::from_bytes(bytes).unwrap_err(),
                CryptoError::WeakPublicKey,
                "{point}"
            );
            assert_eq!(
                SealingPublicKey::from_base64(&BASE64_STANDARD.encode(bytes)).unwrap_err(),
                CryptoError::WeakPublicKey,
                "{point}"
            );
        }
        // Each of them really makes the shared secret all-zero (which is why it is refused).
        for point in &low_order[..5] {
            let bytes: [u8; 32] = from_hex(point).try_into().unwrap();
            assert_eq!(
                MontgomeryPoint(bytes).mul_clamped([0x11; 32]).to_bytes(),
                [0u8; 32]
            );
        }
        // A good key with the top bit set is the same point to X25519, but not canonical.
        let mut top_bit = *KeyEncryptionKey::from_bytes([9u8; KEY_LENGTH])
            .sealing_public_key()
            .as_bytes();
        top_bit[31] |= 0x80;
        assert_eq!(
            SealingPublicKey::from_bytes(top_bit).unwrap_err(),
            CryptoError::WeakPublicKey
        );
        // The base point (u = 9) is canonical and of large order.
        let mut base_point = [0u8; 32];
        base_point[0] = 9;
        assert!(SealingPublicKey::from_bytes(base_point).is_ok());
    }

    #[test]
    fn data_keys_wrapped_to_the_public_key_unwrap_only_with_its_kek() {
        let key_encryption_key = KeyEncryptionKey::from_bytes([9u8; KEY_LENGTH]);
        let public_key = key_encryption_key.sealing_public_key();
        let key = DataKey::generate().unwrap();
        let wrapped = public_key.wrap(&key, KEY_ID).unwrap();
        assert_eq!(wrapped.len(), PUBLIC_WRAPPED_KEY_LENGTH);
        assert_eq!(wrapped.len(), 81);
        assert_eq!(wrapped[0], 0x02);
        let again = public_key.wrap(&key, KEY_ID).unwrap();
        assert_ne!(
            wrapped[1..33],
            again[1..33],
            "a fresh ephemeral key per wrap"
        );

        let unwrapped = key_encryption_key.unwrap(&wrapped, KEY_ID).unwrap();
        let sealed = seal(&key, KEY_ID, b"home visit findings", b"").unwrap();
        assert_eq!(
            open(&unwrapped, &sealed, b"").unwrap(),
            b"home visit findings"
        );
        assert!(key_encryption_key.unwrap(&again, KEY_ID).is_ok());

        let other_key_encryption_key = KeyEncryptionKey::from_bytes([10u8; KEY_LENGTH]);
        assert_eq!(
            other_key_encryption_key
                .unwrap(&wrapped, KEY_ID)
                .unwrap_err(),
            CryptoError::DecryptionFailed
        );
        assert_eq!(
            key_encryption_key
                .unwrap(&wrapped, "household/4f1c2a/v2")
                .unwrap_err(),
            CryptoError::DecryptionFailed
        );
        for position in 1..wrapped.len() {
            let mut tampered = wrapped.clone();
            tampered[position] ^= 0x01;
            assert_eq!(
                key_encryption_key.unwrap(&tampered, KEY_ID).unwrap_err(),
                CryptoError::DecryptionFailed,
                "byte {position}"
            );
        }
        // An encapsulated key of low order: the all-zero shared secret, refused.
        for low_order in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let mut forged = wrapped.clone();
            forged[1..33].copy_from_slice(&low_order);
            assert_eq!(
                key_encryption_key.unwrap(&forged, KEY_ID).unwrap_err(),
                CryptoError::DecryptionFailed
            );
        }
        assert_eq!(
            key_encryption_key
                .unwrap(&wrapped[..80], KEY_ID)
                .unwrap_err(),
            CryptoError::WrongWrappedKeyLength { length: 80 }
        );
        let mut longer = wrapped.clone();
        longer.push(0);
        assert_eq!(
            key_encryption_key.unwrap(&longer, KEY_ID).unwrap_err(),
            CryptoError::WrongWrappedKeyLength { length: 82 }
        );
        // The version byte selects the format: relabelled, it is not a symmetric wrap.
        let mut relabelled = wrapped.clone();
        relabelled[0] = WRAPPED_KEY_FORMAT_VERSION;
        assert_eq!(
            key_encryption_key.unwrap(&relabelled, KEY_ID).unwrap_err(),
            CryptoError::WrongWrappedKeyLength { length: 81 }
        );
        assert_eq!(
            key_encryption_key.unwrap(&[], KEY_ID).unwrap_err(),
            CryptoError::WrongWrappedKeyLength { length: 0 }
        );
        assert_eq!(
            public_key.wrap(&key, "").unwrap_err(),
            CryptoError::EmptyKeyId
        );
    }

    #[test]
    fn a_public_wrap_by_an_independent_hpke_implementation_unwraps() {
        let key_encryption_key = KeyEncryptionKey::from_bytes([9u8; KEY_LENGTH]);
        let wrapped = from_hex(PUBLIC_WRAP_TEST_VECTOR);
        assert_eq!(wrapped.len(), PUBLIC_WRAPPED_KEY_LENGTH);
        let key = key_encryption_key
            .unwrap(&wrapped, PUBLIC_WRAP_TEST_KEY_ID)
            .unwrap();
        let expected: [u8; 32] = std::array::from_fn(|index| index as u8);
        assert_eq!(key.bytes.as_slice(), &expected);
        assert_eq!(
            key_encryption_key
                .unwrap(&wrapped, "dk-0195f0c8-7d3a-7b2e-9c41-5a6b7c8d9e0e")
                .unwrap_err(),
            CryptoError::DecryptionFailed
        );
    }

    #[test]
    fn keys_load_from_base64() {
        let key_base64 = BASE64_STANDARD.encode([5u8; 32]);
        let key_encryption_key = KeyEncryptionKey::from_base64(&format!("{key_base64}\n")).unwrap();
        let wrapped = key_encryption_key.wrap(&data_key(1), KEY_ID).unwrap();
        let same_key = KeyEncryptionKey::from_bytes([5u8; 32]);
        assert!(same_key.unwrap(&wrapped, KEY_ID).is_ok());

        assert_eq!(
            KeyEncryptionKey::from_base64("not base64!").unwrap_err(),
            CryptoError::InvalidKeyBase64
        );
        assert_eq!(
            KeyEncryptionKey::from_base64(&BASE64_STANDARD.encode([5u8; 31])).unwrap_err(),
            CryptoError::WrongKeyLength { length: 31 }
        );
        assert_eq!(
            BlindIndexKey::from_base64(&BASE64_STANDARD.encode([5u8; 33])).unwrap_err(),
            CryptoError::WrongKeyLength { length: 33 }
        );
        assert!(BlindIndexKey::from_base64(&key_base64).is_ok());
    }

    #[test]
    fn blind_index_is_deterministic_and_separated_by_domain_and_key() {
        let key = BlindIndexKey::from_bytes([0x42; 32]);
        let other_key = BlindIndexKey::from_bytes([0x43; 32]);
        let value = "110101199003074578";
        let index = blind_index(&key, "resident-id", value);
        assert_eq!(index, blind_index(&key, "resident-id", value));
        assert_ne!(index, blind_index(&key, "guardian-id", value));
        assert_ne!(index, blind_index(&other_key, "resident-id", value));
        assert_ne!(
            index,
            blind_index(&key, "resident-id", "110101199003074579")
        );
    }

    #[test]
    fn blind_index_matches_hand_computed_hmac() {
        // python3 -c "import hmac,hashlib; print(hmac.new(bytes([0x42]*32),
        //   b'resident-id\x00110101199003074578', hashlib.sha256).hexdigest())"
        let key = BlindIndexKey::from_bytes([0x42; 32]);
        assert_eq!(
            hex(&blind_index(&key, "resident-id", "110101199003074578")),
            "856bc052132830e43f9044bfcac5cbc0867c887682b52cf19353e4ae215e83ff"
        );
        // And the block-padded key is the same HMAC key as the 32-byte one.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[0x42; 32]).unwrap();
        mac.update(b"resident-id\x00110101199003074578");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(
            blind_index(&key, "resident-id", "110101199003074578"),
            expected
        );
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let outputs = [
            format!("{:?}", DataKey::from_bytes([0xab; 32])),
            format!("{:?}", KeyEncryptionKey::from_bytes([0xab; 32])),
            format!("{:?}", BlindIndexKey::from_bytes([0xab; 32])),
        ];
        for output in outputs {
            assert!(output.contains("redacted"), "{output}");
            assert!(!output.contains("171"), "{output}");
            assert!(!output.to_lowercase().contains("ab"), "{output}");
        }
    }
}
