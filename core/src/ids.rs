//! Bedrock-style resource ids: 10 characters of `[0-9a-zA-Z]`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A random id in UUID form (8-4-4-4-12 hex digits), for request and session ids.
pub fn random_uuid() -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..),
        fastrand::u16(..),
        fastrand::u64(..) & 0xffff_ffff_ffff
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceId(String);

impl ResourceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random id in Bedrock's alphabet (upper case and digits, as Bedrock issues).
    pub fn random() -> Self {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let id = (0..10)
            .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
            .collect();
        Self(id)
    }
}

impl TryFrom<String> for ResourceId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.len() == 10 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(value))
        } else {
            Err(format!(
                "invalid id {value:?}: Bedrock ids are exactly 10 characters of [0-9a-zA-Z]"
            ))
        }
    }
}

impl From<ResourceId> for String {
    fn from(id: ResourceId) -> Self {
        id.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bedrock_ids_and_rejects_others() {
        assert!(ResourceId::try_from("DEMOKB0001".to_owned()).is_ok());
        assert!(ResourceId::try_from("short".to_owned()).is_err());
        assert!(ResourceId::try_from("DEMO-B0001".to_owned()).is_err());
        let random = ResourceId::random();
        assert!(ResourceId::try_from(random.to_string()).is_ok());
    }
}
