// Calls to Quarry's API from the console: Bedrock's operations and Quarry's /quarry/ ones,
// signed with the signed-in key (or unsigned in open mode).

import { sign } from "./sigv4.js";

let session = null; // { credentials, region, signed }

export function setSession(s) {
  session = s;
}

export function currentSession() {
  return session;
}

export class ApiError extends Error {
  constructor(status, name, message) {
    super(message);
    this.status = status;
    this.name = name;
  }
}

// The path with each segment percent-encoded (ids, names and ARNs go in paths).
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ""), "");
}

// Sends one request; resolves to the Response (status checked) so callers may stream it.
export async function send(method, target, body) {
  const text = body === undefined ? "" : JSON.stringify(body);
  const headers = { "content-type": "application/json" };
  if (session && session.signed) {
    const [pathPart, query = ""] = target.split("?");
    Object.assign(
      headers,
      await sign({
        method,
        host: location.host,
        path: pathPart,
        query,
        body: text,
        credentials: session.credentials,
        region: session.region,
      }),
    );
  }
  const response = await fetch(target, {
    method,
    headers,
    body: method === "GET" || method === "DELETE" ? undefined : text,
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) {
    let name = `HTTP ${response.status}`;
    let message = response.statusText;
    try {
      const err = await response.json();
      message = err.message || err.Message || message;
      name = (response.headers.get("x-amzn-errortype") || "").split(":")[0] || err.__type || name;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, name, message);
  }
  return response;
}

export async function call(method, target, body) {
  const response = await send(method, target, body);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

// Every page of a Bedrock list operation.
export async function listAll(target, key, body = {}) {
  const items = [];
  let nextToken;
  do {
    const page = await call("POST", target, { ...body, maxResults: 100, ...(nextToken ? { nextToken } : {}) });
    items.push(...(page[key] || []));
    nextToken = page.nextToken;
  } while (nextToken);
  return items;
}
