//! RTMPS (T085): the listener with a TLS acceptor takes a publish from our
//! RTMP client over a rustls client connection (certificate made at test
//! time), and a TLS handshake that does not finish is cut at the handshake
//! deadline (`tls_handshake_timeout`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Ingest, Publisher, closed_within, connect_from, handshake, wait_event};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use streaming_core::config::IngestConfig;
use streaming_core::events::Event;
use streaming_core::limits::LimitKind;
use streaming_core::model::StreamStatus;
use tokio::io::AsyncWriteExt;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A self-signed certificate for `localhost`: the server's acceptor and a
/// client connector that trusts exactly it.
fn tls_pair() -> (TlsAcceptor, TlsConnector) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    )
}

fn config() -> IngestConfig {
    IngestConfig {
        handshake_timeout_secs: 1,
        ..IngestConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_over_rtmps() {
    let (acceptor, connector) = tls_pair();
    let ingest = Ingest::start(config(), Some(acceptor)).await;
    let mut events = ingest.events.subscribe();
    let (id, key) = ingest.stream().await;
    let tcp = connect_from(1, ingest.addr).await;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let mut p = Publisher::publish(tls, &key, Duration::from_secs(5))
        .await
        .expect("publish over RTMPS is accepted");
    p.send_video(0).await.unwrap();
    p.send_video(40).await.unwrap();
    assert!(
        wait_event(&mut events, Duration::from_secs(5), |e| matches!(
            e, Event::StreamStarted { stream_id, .. } if *stream_id == id
        ))
        .await
        .is_some(),
        "media over RTMPS started the stream"
    );
    let stream = ingest.repo.get_stream(id).await.unwrap().unwrap();
    assert_eq!(stream.status, StreamStatus::Active);
    // The encoder stops: the stream ends.
    p.session.finish();
    p.flush().await.unwrap();
    let _ = p.io.shutdown().await;
    assert!(
        wait_event(&mut events, Duration::from_secs(5), |e| matches!(
            e, Event::StreamEnded { stream_id, .. } if *stream_id == id
        ))
        .await
        .is_some()
    );
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_must_finish_within_the_handshake_deadline() {
    let (acceptor, _) = tls_pair();
    let ingest = Ingest::start(config(), Some(acceptor)).await;
    // Nothing at all after connecting.
    let mut idle = connect_from(2, ingest.addr).await;
    let took = closed_within(&mut idle, Duration::from_secs(4))
        .await
        .expect("cut");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(ingest.hits(LimitKind::TlsHandshakeTimeout), 1);
    // Plain RTMP on the RTMPS port fails the TLS handshake at once.
    let mut plain = connect_from(2, ingest.addr).await;
    let _ = plain.write_all(&handshake()).await;
    assert!(
        closed_within(&mut plain, Duration::from_millis(500))
            .await
            .is_some()
    );
    assert_eq!(ingest.hits(LimitKind::TlsHandshakeTimeout), 1);
    assert_eq!(ingest.wait_open("rtmp", 0).await, 0);
    ingest.stop().await;
}
