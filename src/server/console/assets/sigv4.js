// AWS Signature Version 4 in the browser, with WebCrypto, as botocore signs requests to
// Bedrock: service "bedrock", header-based Authorization, the body's SHA-256 signed.

const encoder = new TextEncoder();

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(data) {
  return crypto.subtle.digest("SHA-256", typeof data === "string" ? encoder.encode(data) : data);
}

async function hmac(key, text) {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const k = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, encoder.encode(text));
}

// RFC 3986 encoding as SigV4 defines it, byte by byte; "/" kept unless encodeSlash.
export function uriEncode(text, encodeSlash) {
  let out = "";
  for (const b of encoder.encode(text)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (c === "/" && !encodeSlash)) {
      out += c;
    } else {
      out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
    }
  }
  return out;
}

// Whether this page may sign at all: browsers give WebCrypto only to secure contexts
// (HTTPS, or http on localhost / 127.0.0.1).
export function canSign() {
  return Boolean(globalThis.crypto && crypto.subtle);
}

// The headers that sign one request. `path` is the path as sent (already percent-encoded);
// services other than S3 sign it encoded once more.
export async function sign({ method, host, path, query = "", body = "", credentials, region, now = new Date() }) {
  const amzDate = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const payloadHash = hex(await sha256(body));
  const headers = {
    host,
    "x-amz-content-sha256": payloadHash,
    "x-amz-date": amzDate,
  };
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n]}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalQuery = query
    .split("&")
    .filter(Boolean)
    .map((pair) => {
      const [k, v = ""] = pair.split("=");
      return [uriEncode(decodeURIComponent(k), true), uriEncode(decodeURIComponent(v), true)];
    })
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonical = [method, uriEncode(path || "/", false), canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].join("\n");
  const scope = `${day}/${region}/bedrock/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, hex(await sha256(canonical))].join("\n");
  let key = await hmac("AWS4" + credentials.secretAccessKey, day);
  for (const part of [region, "bedrock", "aws4_request"]) {
    key = await hmac(key, part);
  }
  const signature = hex(await hmac(key, stringToSign));
  return {
    "x-amz-content-sha256": payloadHash,
    "x-amz-date": amzDate,
    authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}
