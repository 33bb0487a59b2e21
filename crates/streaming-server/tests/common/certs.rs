//! Certificates made at test time (rcgen): a CA and leaf certificates it
//! signs, written as PEM files the server reads.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A throw-away certificate authority.
pub struct TestCa {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "streaming-server test CA");
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `localhost` and 127.0.0.1 with common name `cn`: (cert PEM, key PEM, cert DER).
    pub fn leaf(&self, cn: &str) -> (String, String, Vec<u8>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    /// Writes a new leaf to `dir/cert.pem` and `dir/key.pem` (key first, then
    /// the certificate, each by rename so the server never reads half a file);
    /// returns the paths and the certificate's DER.
    pub fn write_leaf(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let (cert, key, der) = self.leaf(cn);
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        for (path, text) in [(&key_path, key), (&cert_path, cert)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("write PEM");
            std::fs::rename(&tmp, path).expect("rename PEM");
        }
        (cert_path, key_path, der)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
