//! TLS (issue 9, point 7): the server binary with HTTPS and RTMPS listeners
//! on certificates made at test time. FFmpeg publishes over `rtmps://`, the
//! watch page plays over `https://` in Chromium, and replacing the
//! certificate files makes new connections present the new certificate
//! without a restart.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::abuse::{ADMIN_TOKEN, ServerProcess, banner_addr};
use common::certs::TestCa;
use common::{Publish, ffmpeg_publish, repo_root, require, run};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Accepts any certificate and remembers the end-entity one it was shown.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate a new TLS connection to `addr` is shown (DER).
async fn presented_cert(addr: SocketAddr) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let _tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .expect("TLS handshake within 5 s")
        .expect("TLS handshake");
    recorder
        .seen
        .lock()
        .unwrap()
        .clone()
        .expect("a certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_publish_plays_over_https_in_chromium_and_certificates_reload() {
    require("node", "nodejs");
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = TestCa::new();
    let (cert, key, first_der) = ca.write_leaf(&certs, "first");
    let toml = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\nhttps_addr = \"127.0.0.1:0\"\n\
         rtmps_addr = \"127.0.0.1:0\"\nplain_http = false\nplain_rtmp = false\nreload_check_secs = 1\n\
         [http]\nheader_read_timeout_secs = 3\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let server = ServerProcess::start(&dir.path().join("data"), &toml).await;
    let https =
        banner_addr(&server.banner, "HTTPS https://").expect("HTTPS listener in the banner");
    let rtmps =
        banner_addr(&server.banner, "RTMPS rtmps://").expect("RTMPS listener in the banner");
    assert!(
        !server.banner.contains(" rtmp://") && !server.banner.contains(" http://"),
        "plain listeners are off: {}",
        server.banner
    );
    let base = format!("https://{https}");

    // A client that trusts the test CA speaks HTTPS to the server.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let created: serde_json::Value = client
        .post(format!("{base}/api/v1/streams"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": "over TLS"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        created["watch_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http")),
        "{created}"
    );
    assert_eq!(presented_cert(https).await, first_der);

    // FFmpeg publishes over RTMPS; the watch page plays over HTTPS.
    let id = created["id"].as_str().unwrap().to_string();
    let key = created["stream_key"].as_str().unwrap().to_string();
    let mut ffmpeg = ffmpeg_publish(
        &format!("rtmps://{rtmps}/live/{key}"),
        &Publish {
            seconds: 60.0,
            width: 320,
            height: 180,
            ..Publish::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .get(format!("{base}/hls/{id}/master.m3u8"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no master playlist over HTTPS");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let script = repo_root().join("web/tests/play.mjs");
    let (ok, out, err) = run(
        "node",
        &[
            script.to_str().unwrap(),
            &format!("{base}/watch/{id}"),
            "--seconds",
            "5",
            "--min-advance",
            "3",
            "--start-timeout",
            "30",
            "--ignore-https-errors",
        ],
        Duration::from_secs(90),
    )
    .await;
    assert!(ok, "the watch page did not play over HTTPS: {out} {err}");

    assert_eq!(
        presented_cert(rtmps).await,
        first_der,
        "RTMPS presents the certificate"
    );

    // The HTTPS listener has the HTTP deadlines: a connection that never
    // starts its TLS handshake is cut by the header deadline (3 s here).
    let mut silent = tokio::net::TcpStream::connect(https).await.unwrap();
    let cut = common::abuse::closed_within(&mut silent, Duration::from_secs(8))
        .await
        .expect("a silent HTTPS connection is cut");
    println!("silent HTTPS connection cut after {cut:?}");
    assert!(cut >= Duration::from_secs(2), "cut too early: {cut:?}");
    let metrics = client
        .get(format!("{base}/metrics"))
        .bearer_auth(common::abuse::METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("streaming_limit_hits_total{kind=\"tls_handshake_timeout\"} 1"),
        "the cut is counted"
    );

    // Replace the certificate: new connections get the new one, no restart.
    let (_, _, second_der) = ca.write_leaf(&certs, "second");
    assert_ne!(first_der, second_der);
    let t = Instant::now();
    loop {
        if presented_cert(https).await == second_der {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the new certificate was not picked up within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "certificate reloaded {:?} after the files changed",
        t.elapsed()
    );
    assert!(server.logs().contains("TLS certificate reloaded"));
    // The old keep-alive client still works (and new ones verify the new chain).
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}
