"""A plain SigV4 signer for tests that need requests botocore will not make: a payload hash
header that lies, UNSIGNED-PAYLOAD, a body swapped after signing."""
import datetime
import hashlib
import hmac
import urllib.parse


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(url, body, key, secret, method="POST", payload_hash=None, content_sha256=None,
         region="us-east-1", service="bedrock"):
    """Headers signing `method url body`. `payload_hash` is what the canonical request names
    as the payload (the body's SHA-256 by default); `content_sha256`, when given, is sent and
    signed as the x-amz-content-sha256 header."""
    parts = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": parts.netloc, "x-amz-date": amz_date, "content-type": "application/json"}
    if content_sha256 is not None:
        headers["x-amz-content-sha256"] = content_sha256
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{headers[n]}\n" for n in names)
    payload = payload_hash or hashlib.sha256(body).hexdigest()
    path = urllib.parse.quote(parts.path or "/", safe="/-_.~")
    canonical = "\n".join([method, path, "", canonical_headers, ";".join(names), payload])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret).encode(), day)
    for part in (region, service, "aws4_request"):
        k = _hmac(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return headers
