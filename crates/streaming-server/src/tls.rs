//! TLS for the HTTPS and RTMPS listeners (T085): rustls with the ring
//! provider, the certificate chain and key read from PEM files and reloaded
//! without a restart when the files change.
//!
//! A [`CertStore`] resolves every handshake to the certificate loaded last; a
//! task checks the files' modification time and size every
//! `tls.reload_check_secs` and swaps in the new pair once both parse and the
//! key matches (a half-written pair keeps the old one and logs why). Handshakes
//! in flight keep the certificate they started with; new connections get the
//! new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use streaming_core::config::TlsConfig;
use streaming_core::hub::CancellationToken;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its private key from PEM files.
pub fn load_pair(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificates from {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificates in {}", cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key from {}", key.display()))?;
    let ck = CertifiedKey::from_der(certs, key, &provider())
        .context("the private key does not match the certificate (or is not supported)")?;
    Ok(ck)
}

/// What identifies a version of a file on disk: modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The certificate in force, swapped when the files change.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: RwLock<(Stamp, Stamp)>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

impl CertStore {
    /// Loads the pair (an error stops the server from starting).
    pub fn open(cert: &Path, key: &Path) -> anyhow::Result<Arc<Self>> {
        let ck = load_pair(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(ck)),
            stamps: RwLock::new((stamp(cert), stamp(key))),
        }))
    }

    /// Reloads if either file changed since the last look; returns whether
    /// a new certificate is in force.
    pub fn reload_if_changed(&self) -> bool {
        let now = (stamp(&self.cert), stamp(&self.key));
        if *self.stamps.read().unwrap_or_else(|p| p.into_inner()) == now {
            return false;
        }
        match load_pair(&self.cert, &self.key) {
            Ok(ck) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ck);
                *self.stamps.write().unwrap_or_else(|p| p.into_inner()) = now;
                info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                // Probably half-written: keep serving the old pair, look again.
                warn!(error = %format!("{e:#}"), "TLS certificate changed but could not be loaded; keeping the previous one");
                false
            }
        }
    }

    /// The end-entity certificate in force (DER).
    pub fn current_der(&self) -> Vec<u8> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .first()
            .map(|c| c.to_vec())
            .unwrap_or_default()
    }

    /// Checks the files every `every` until `shutdown`.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let s = store.clone();
                // File reads off the async threads.
                let _ = tokio::task::spawn_blocking(move || s.reload_if_changed()).await;
            }
        });
    }
}

/// Acceptors of one certificate store: HTTPS (ALPN `http/1.1`) and RTMPS.
pub struct Acceptors {
    pub store: Arc<CertStore>,
    pub https: TlsAcceptor,
    pub rtmps: TlsAcceptor,
}

fn server_config(store: &Arc<CertStore>, alpn: &[&[u8]]) -> anyhow::Result<rustls::ServerConfig> {
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(c)
}

/// The acceptors for `cfg`, or `None` when no TLS listener is configured.
pub fn acceptors(
    cfg: &TlsConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Acceptors>> {
    if cfg.https_addr.is_none() && cfg.rtmps_addr.is_none() {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) else {
        bail!(
            "an HTTPS or RTMPS listener needs tls.cert_file and tls.key_file (--tls-cert, --tls-key)"
        );
    };
    let store = CertStore::open(cert, key)?;
    store.spawn_reloader(
        Duration::from_secs(cfg.reload_check_secs.max(1)),
        shutdown.clone(),
    );
    Ok(Some(Acceptors {
        https: TlsAcceptor::from(Arc::new(server_config(&store, &[b"http/1.1"])?)),
        rtmps: TlsAcceptor::from(Arc::new(server_config(&store, &[])?)),
        store,
    }))
}
