//! TLS with rustls 0.23 (`ring` provider): the server's `[server.tls]` configuration
//! and the CLI's client configuration (system roots plus an optional `--ca` file).
//!
//! Every failure names the file it is about, so a missing or unreadable certificate or
//! key stops the start with a message a person can act on; nothing here panics.

use crate::config::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// A TLS file that could not be used: which file, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS {what} `{file}`: {problem}")]
pub struct TlsError {
    /// "certificate file", "key file" or "CA file".
    pub what: &'static str,
    pub file: String,
    pub problem: String,
}

fn tls_error(what: &'static str, file: &Path, problem: impl Into<String>) -> TlsError {
    TlsError {
        what,
        file: file.display().to_string(),
        problem: problem.into(),
    }
}

/// Describes a PEM loading error; I/O errors (missing file, no permission) say so.
fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => format!("cannot read: {io}"),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the right kind".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// The crypto provider every config here uses, explicitly, so that no process-wide
/// default has to be installed (and another crate enabling a second provider cannot
/// make the choice ambiguous).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file; at least one is required.
pub(crate) fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // Read first so a missing or unreadable file gets the plain I/O message.
    let bytes =
        std::fs::read(path).map_err(|e| tls_error(what, path, format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(what, path, pem_problem(e)))?;
    if certs.is_empty() {
        return Err(tls_error(
            what,
            path,
            "no CERTIFICATE found in the PEM file",
        ));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "key file";
    let bytes =
        std::fs::read(path).map_err(|e| tls_error(what, path, format!("cannot read: {e}")))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            tls_error(what, path, "no PRIVATE KEY found in the PEM file")
        }
        other => tls_error(what, path, pem_problem(other)),
    })
}

/// The rustls server configuration for `[server.tls]`.
pub(crate) fn server_config(tls: &TlsConfig) -> Result<rustls::ServerConfig, TlsError> {
    let cert_path = Path::new(&tls.cert_file);
    let key_path = Path::new(&tls.key_file);
    let certs = load_certs("certificate file", cert_path)?;
    let key = load_key(key_path)?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("certificate file", cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls_error(
                "key file",
                key_path,
                format!("does not fit the certificate in {}: {e}", tls.cert_file),
            )
        })
}

/// The rustls client configuration for `simcast watch|ctl` over `wss://`: the system's
/// root certificates, plus every certificate in `ca` (e.g. a self-signed server's own).
pub(crate) fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        log::debug!("system root certificates: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    log::debug!("system root certificates: {added} added, {ignored} ignored");
    if let Some(path) = ca {
        for cert in load_certs("CA file", path)? {
            roots.add(cert).map_err(|e| {
                tls_error("CA file", path, format!("not a usable certificate: {e}"))
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("CA file", ca.unwrap_or(Path::new("")), e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The `on_connect_ext` hook for TLS listeners: records the TCP socket under the TLS
/// stream, exactly as [`crate::http::on_connect`] does for plain ones, so the broker can
/// evict a jammed TLS client too.
pub(crate) fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    use actix_tls::accept::rustls_0_23::TlsStream;
    if let Some(stream) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
        let (tcp, _) = stream.get_ref();
        if let Some(handle) = crate::conn::ConnHandle::from_stream(tcp) {
            ext.insert(handle);
        }
    } else {
        crate::http::on_connect(conn, ext);
    }
}
