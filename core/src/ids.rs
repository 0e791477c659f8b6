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

/// What is wrong with an S3 bucket name under S3's naming rules (3 to 63 characters of
/// lower-case letters, digits, dots and hyphens; a letter or digit at each end; no two
/// adjacent dots; not an IP address; none of S3's reserved prefixes and suffixes).
pub fn bucket_name_problem(name: &str) -> Option<String> {
    let problem = if !(3..=63).contains(&name.len()) {
        "must be 3 to 63 characters long"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        "may hold only lower-case letters, digits, dots and hyphens"
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        "must begin and end with a letter or digit"
    } else if name.contains("..") || name.contains(".-") || name.contains("-.") {
        "must not have two dots, or a dot and a hyphen, next to each other"
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        "must not look like an IP address"
    } else if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["-s3alias", "--ol-s3", "--x-s3", ".mrap"]
            .iter()
            .any(|s| name.ends_with(s))
    {
        "uses a prefix or suffix S3 reserves"
    } else {
        return None;
    };
    Some(format!("bucket name {name:?} {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["company-docs", "a.b.c", "abc", "docs2026"] {
            assert_eq!(bucket_name_problem(good), None, "{good}");
        }
        for bad in [
            "..",
            "a..b",
            "ab",
            "Company",
            "-abc",
            "abc-",
            "a_b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "a/b",
            "a.-b",
        ] {
            assert!(bucket_name_problem(bad).is_some(), "{bad}");
        }
        assert!(bucket_name_problem(&"a".repeat(64)).is_some());
    }

    #[test]
    fn accepts_bedrock_ids_and_rejects_others() {
        assert!(ResourceId::try_from("DEMOKB0001".to_owned()).is_ok());
        assert!(ResourceId::try_from("short".to_owned()).is_err());
        assert!(ResourceId::try_from("DEMO-B0001".to_owned()).is_err());
        let random = ResourceId::random();
        assert!(ResourceId::try_from(random.to_string()).is_ok());
    }
}
