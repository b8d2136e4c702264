//! The policy version: a SHA-256 content hash over the loaded policy files.
//!
//! This module owns [`PolicyVersion`]. The hash covers every file of the policy directory in a
//! canonical order (sorted by file name), each framed by its name and length, so the same files
//! always give the same version and any change to any byte of any file gives another.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::parameters::PolicySource;

/// 政策版本: identifies exactly which parameter files a decision used. Written as 64 lowercase
/// hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyVersion {
    digest: [u8; 32],
}

impl PolicyVersion {
    /// The hash of `sources` in canonical order: for each file sorted by name, the bytes
    /// `name`, `\n`, the text's length in bytes as decimal, `\n`, then the text.
    pub fn of_sources(sources: &[PolicySource]) -> PolicyVersion {
        let mut ordered: Vec<&PolicySource> = sources.iter().collect();
        ordered.sort_by(|left, right| left.file_name.cmp(&right.file_name));
        let mut hasher = Sha256::new();
        for source in ordered {
            hasher.update(source.file_name.as_bytes());
            hasher.update(b"\n");
            hasher.update(source.text.len().to_string().as_bytes());
            hasher.update(b"\n");
            hasher.update(source.text.as_bytes());
        }
        let mut digest = [0_u8; 32];
        digest.copy_from_slice(&hasher.finalize());
        PolicyVersion { digest }
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.digest
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> String {
        let mut text = self.to_hex();
        text.truncate(12);
        text
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PolicyVersion {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PolicyVersion({})", self.to_hex())
    }
}

/// Why a text is not a policy version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a policy version is 64 hex digits")]
pub struct PolicyVersionParseError;

impl FromStr for PolicyVersion {
    type Err = PolicyVersionParseError;

    fn from_str(text: &str) -> Result<PolicyVersion, PolicyVersionParseError> {
        let mut digest = [0_u8; 32];
        hex::decode_to_slice(text, &mut digest).map_err(|_| PolicyVersionParseError)?;
        Ok(PolicyVersion { digest })
    }
}

impl Serialize for PolicyVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PolicyVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PolicyVersion, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn source(name: &str, text: &str) -> PolicySource {
        PolicySource {
            file_name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn order_of_sources_does_not_matter_but_content_and_names_do() {
        let first = PolicyVersion::of_sources(&[source("a.toml", "x"), source("b.toml", "y")]);
        let same = PolicyVersion::of_sources(&[source("b.toml", "y"), source("a.toml", "x")]);
        let changed = PolicyVersion::of_sources(&[source("a.toml", "x"), source("b.toml", "z")]);
        let renamed = PolicyVersion::of_sources(&[source("a.toml", "x"), source("c.toml", "y")]);
        // Framing: moving bytes between files changes the version.
        let moved = PolicyVersion::of_sources(&[source("a.toml", "xy"), source("b.toml", "")]);
        assert_eq!(first, same);
        assert_ne!(first, changed);
        assert_ne!(first, renamed);
        assert_ne!(first, moved);
        assert_eq!(first.to_hex().len(), 64);
        assert_eq!(first.to_hex().parse::<PolicyVersion>().unwrap(), first);
    }

    #[test]
    fn hash_of_empty_input_is_the_sha256_of_nothing() {
        assert_eq!(
            PolicyVersion::of_sources(&[]).to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
