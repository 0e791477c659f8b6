//! `cfg(qdrant_url)` when QDRANT_URL is set, so the Qdrant suite runs against that server and
//! is reported as ignored (with the reason) everywhere else.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(qdrant_url)");
    println!("cargo::rerun-if-env-changed=QDRANT_URL");
    if std::env::var_os("QDRANT_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=qdrant_url");
    }
}
