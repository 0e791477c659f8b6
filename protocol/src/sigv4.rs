//! AWS Signature Version 4 verification, as the AWS SDKs sign requests to Bedrock
//! (service name `bedrock`, header-based `Authorization`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("missing Authorization header: requests must be signed with AWS Signature Version 4")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    #[error("missing or malformed X-Amz-Date header")]
    BadDate,
    #[error(
        "signature expired: the request was signed at {signed}, more than 15 minutes from the server's time {now}"
    )]
    Stale { signed: String, now: String },
    #[error("the credential scope's service is {0:?}; Bedrock requests are signed for \"bedrock\"")]
    WrongService(String),
    #[error(
        "the request signature we calculated does not match the signature you provided; check your secret access key"
    )]
    Mismatch,
    #[error(
        "x-amz-content-sha256 is {0:?}: requests to this API sign their body (UNSIGNED-PAYLOAD and streaming payloads are S3 conventions)"
    )]
    UnsignedPayload(String),
    #[error("x-amz-content-sha256 does not match the SHA-256 of the request body")]
    PayloadMismatch,
}

/// Most a signature's time may differ from ours.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

pub fn parse_authorization(header: &str) -> Result<Credential, SigV4Error> {
    let rest = header
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| SigV4Error::Malformed("expected the AWS4-HMAC-SHA256 algorithm".into()))?;
    let mut fields = BTreeMap::new();
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| SigV4Error::Malformed(format!("bad component {part:?}")))?;
        fields.insert(k, v);
    }
    let get = |k: &str| {
        fields
            .get(k)
            .copied()
            .ok_or_else(|| SigV4Error::Malformed(format!("missing {k}")))
    };
    let scope: Vec<&str> = get("Credential")?.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(SigV4Error::Malformed(
            "Credential must be KEY/DATE/REGION/SERVICE/aws4_request".into(),
        ));
    }
    Ok(Credential {
        access_key_id: scope[0].to_owned(),
        date: scope[1].to_owned(),
        region: scope[2].to_owned(),
        service: scope[3].to_owned(),
        signed_headers: get("SignedHeaders")?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: get("Signature")?.to_owned(),
    })
}

/// What the verifier needs of a request.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    pub query: &'a str,
    /// Header name (any case) and value.
    pub headers: &'a [(String, String)],
}

fn header<'a>(req: &'a SignedRequest<'_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The hex SHA-256 of a body, as the canonical request names it.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The checks that need no body: the service, the date and its freshness, the signed
/// headers, and a payload hash header of the right kind. Run before the body is read, so an
/// unsigned or stale client cannot make the server buffer anything.
pub fn precheck(
    req: &SignedRequest<'_>,
    credential: &Credential,
    now: DateTime<Utc>,
) -> Result<(), SigV4Error> {
    if credential.service != "bedrock" {
        return Err(SigV4Error::WrongService(credential.service.clone()));
    }
    let amz_date = header(req, "x-amz-date").ok_or(SigV4Error::BadDate)?;
    let signed_at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| SigV4Error::BadDate)?
        .and_utc();
    if (now - signed_at).num_seconds().abs() > MAX_SKEW_SECONDS {
        return Err(SigV4Error::Stale {
            signed: amz_date.to_owned(),
            now: now.format("%Y%m%dT%H%M%SZ").to_string(),
        });
    }
    if !amz_date.starts_with(&credential.date) {
        return Err(SigV4Error::Malformed(
            "the credential date differs from X-Amz-Date".into(),
        ));
    }
    if !credential.signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Malformed(
            "the host header must be signed".into(),
        ));
    }
    if let Some(given) = header(req, "x-amz-content-sha256") {
        let is_hash = given.len() == 64 && given.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hash {
            return Err(SigV4Error::UnsignedPayload(given.to_owned()));
        }
    }
    Ok(())
}

/// Checks a request's signature against the secret of its access key, its age against
/// `now`, and its body: the signature covers `body_sha256` (the hex SHA-256 of the body as
/// received), and an `x-amz-content-sha256` header must name that same hash.
pub fn verify(
    req: &SignedRequest<'_>,
    body_sha256: &str,
    credential: &Credential,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), SigV4Error> {
    precheck(req, credential, now)?;
    if let Some(given) = header(req, "x-amz-content-sha256")
        && !given.eq_ignore_ascii_case(body_sha256)
    {
        return Err(SigV4Error::PayloadMismatch);
    }
    let amz_date = header(req, "x-amz-date").ok_or(SigV4Error::BadDate)?;
    let canonical = canonical_request(req, &credential.signed_headers, body_sha256)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        credential.date, credential.region, credential.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{secret}").as_bytes(),
        credential.date.as_bytes(),
    );
    for part in [
        credential.region.as_str(),
        credential.service.as_str(),
        "aws4_request",
    ] {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if constant_time_eq(expected.as_bytes(), credential.signature.as_bytes()) {
        Ok(())
    } else {
        Err(SigV4Error::Mismatch)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn canonical_request(
    req: &SignedRequest<'_>,
    signed_headers: &[String],
    payload: &str,
) -> Result<String, SigV4Error> {
    // Services other than S3 sign the path URI-encoded once more.
    let path = if req.path.is_empty() { "/" } else { req.path };
    let canonical_path = uri_encode(path, false);
    let mut query: Vec<(String, String)> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), true),
                uri_encode(&percent_decode(v), true),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigV4Error::Malformed(format!(
                "signed header {name:?} is missing"
            )));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{canonical_path}\n{query}\n{headers}\n{}\n{payload}",
        req.method,
        signed_headers.join(";")
    ))
}

/// RFC 3986 encoding as SigV4 defines it; `/` kept unless `encode_slash`.
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signed by botocore's SigV4Auth (service "bedrock", region us-east-1).
    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=39776eb58d81b0646adf00ea0cc4465102e30f0b0ef515e5abe657572a780991";
    const BODY: &[u8] = br#"{"retrievalQuery":{"text":"hi"}}"#;
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn headers() -> Vec<(String, String)> {
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("Host".into(), "127.0.0.1:8080".into()),
            ("X-Amz-Date".into(), "20261122T004113Z".into()),
        ]
    }

    fn request(headers: &[(String, String)]) -> SignedRequest<'_> {
        SignedRequest {
            method: "POST",
            path: "/knowledgebases/DEMOKB0001/retrieve",
            query: "",
            headers,
        }
    }

    fn check(
        headers: &[(String, String)],
        body: &[u8],
        cred: &Credential,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SigV4Error> {
        verify(&request(headers), &payload_hash(body), cred, secret, now)
    }

    fn at(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc()
    }

    #[test]
    fn accepts_a_botocore_signature() {
        let cred = parse_authorization(AUTH).unwrap();
        assert_eq!(cred.access_key_id, "AKIDEXAMPLE");
        assert_eq!(cred.region, "us-east-1");
        let h = headers();
        assert_eq!(
            check(&h, BODY, &cred, SECRET, at("20261122T005000Z")),
            Ok(())
        );
    }

    #[test]
    fn refuses_wrong_secrets_tampered_bodies_and_stale_requests() {
        let cred = parse_authorization(AUTH).unwrap();
        let h = headers();
        let now = at("20261122T004200Z");
        assert_eq!(
            check(&h, BODY, &cred, "wrong", now),
            Err(SigV4Error::Mismatch)
        );
        assert_eq!(
            check(
                &h,
                br#"{"retrievalQuery":{"text":"ho"}}"#,
                &cred,
                SECRET,
                now
            ),
            Err(SigV4Error::Mismatch)
        );
        assert!(matches!(
            check(&h, BODY, &cred, SECRET, at("20261122T010000Z")),
            Err(SigV4Error::Stale { .. })
        ));
        let mut other_host = headers();
        other_host[1].1 = "evil:80".into();
        assert_eq!(
            check(&other_host, BODY, &cred, SECRET, now),
            Err(SigV4Error::Mismatch)
        );
    }

    /// A signed `x-amz-content-sha256` used to stand in for the body, so any body passed
    /// under a seen signature. Now the body is always hashed and must match the header.
    #[test]
    fn the_body_is_bound_to_the_signature_whatever_the_payload_header_says() {
        let cred = parse_authorization(AUTH).unwrap();
        let now = at("20261122T004200Z");
        let mut h = headers();
        h.push(("x-amz-content-sha256".into(), payload_hash(BODY)));
        let evil = br#"{"retrievalQuery":{"text":"ho"}}"#;
        assert_eq!(
            check(&h, evil, &cred, SECRET, now),
            Err(SigV4Error::PayloadMismatch)
        );
        let mut unsigned = headers();
        unsigned.push(("X-Amz-Content-Sha256".into(), "UNSIGNED-PAYLOAD".into()));
        assert_eq!(
            precheck(&request(&unsigned), &cred, now),
            Err(SigV4Error::UnsignedPayload("UNSIGNED-PAYLOAD".into()))
        );
        assert_eq!(
            check(&unsigned, BODY, &cred, SECRET, now),
            Err(SigV4Error::UnsignedPayload("UNSIGNED-PAYLOAD".into()))
        );
        let mut streaming = headers();
        streaming.push((
            "x-amz-content-sha256".into(),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into(),
        ));
        assert!(matches!(
            precheck(&request(&streaming), &cred, now),
            Err(SigV4Error::UnsignedPayload(_))
        ));
    }

    #[test]
    fn parses_and_rejects_headers() {
        assert!(matches!(
            parse_authorization("Basic abc"),
            Err(SigV4Error::Malformed(_))
        ));
        assert!(matches!(
            parse_authorization("AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=x"),
            Err(SigV4Error::Malformed(_))
        ));
        let cred = parse_authorization(&AUTH.replace("/bedrock/", "/s3/")).unwrap();
        let h = headers();
        assert_eq!(
            check(&h, BODY, &cred, SECRET, at("20261122T004200Z")),
            Err(SigV4Error::WrongService("s3".into()))
        );
    }

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(uri_encode("/a b/c~d", false), "/a%20b/c~d");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(percent_decode("a%20b%2F"), "a b/");
    }
}
