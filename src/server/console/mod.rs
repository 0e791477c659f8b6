//! The web console at `/console/`: static pages embedded in the binary. They hold no data and
//! are served unsigned; everything they show comes through the signed API, signed in the
//! browser (SigV4 with WebCrypto) with the key the user signs in with, so the console has
//! exactly that key's rights. In open (loopback) mode it signs nothing.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;

use super::state::AppState;

/// (file name, content type, contents).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/api.js"),
    ),
    (
        "sigv4.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/sigv4.js"),
    ),
    (
        "eventstream.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/eventstream.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dom.js"),
    ),
    (
        "knowledge-bases.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/knowledge-bases.js"),
    ),
    (
        "data-source.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/data-source.js"),
    ),
    (
        "document.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/document.js"),
    ),
    (
        "test-pane.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/test-pane.js"),
    ),
];

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| asset(Path("index.html".to_owned()))))
        .route("/console/settings.json", get(settings))
        .route("/console/{file}", get(asset))
}

/// What the pages need to know before signing in: whether to sign, and for which region.
async fn settings(State(state): State<Arc<AppState>>) -> Response {
    let server = &state.registry.config.server;
    let region = server
        .regions
        .first()
        .cloned()
        .unwrap_or_else(|| "us-east-1".to_owned());
    let body = json!({ "signed": !state.auth.is_open(), "region": region });
    with_headers(Json(body).into_response())
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => {
            let mut response = (*body).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            with_headers(response)
        }
        None => (StatusCode::NOT_FOUND, "no such console file").into_response(),
    }
}

/// The pages run only their own scripts, in no frame of another site's.
fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
