//! Signed viewer-session ids: the server mints every id a viewer may use, so
//! nobody can make viewers up.
//!
//! A signed id reads `{uuid}.{mac}`: the uuid is the session's id everywhere
//! else (database rows, API listings); `mac` is the lower-case hex of the
//! first 16 bytes of HMAC-SHA256 (RFC 2104, FIPS 180-4) keyed with the
//! server's session secret over `"sid1" ‖ stream id (16 bytes) ‖ uuid (16
//! bytes)`. Binding the stream id means an id minted for one stream is
//! worthless for any other; the `sid1` tag versions the format. Tags are
//! compared in constant time ([`hmac::Mac::verify_truncated_left`]).
//! Replicas that share the secret accept each other's ids.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Domain-separation tag of the current id format.
const TAG: &[u8] = b"sid1";
/// Bytes of the HMAC kept in an id.
const MAC_BYTES: usize = 16;
/// Length of a signed id: a hyphenated uuid, a dot, 32 hex digits.
pub const SIGNED_ID_LEN: usize = 36 + 1 + 2 * MAC_BYTES;

/// A session id the server signed for one stream, as it travels in URLs
/// (`?sid=…`) and beacon paths.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SignedSid {
    id: Uuid,
    text: String,
}

impl SignedSid {
    /// The session's own id (the uuid part).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// `{uuid}.{mac}`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for SignedSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SignedSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedSid({})", self.text)
    }
}

/// Signs and verifies session ids with the server's secret.
#[derive(Clone)]
pub struct SessionSigner {
    /// The keyed MAC, cloned for each use (the key schedule is done once).
    mac: Hmac<Sha256>,
}

impl fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSigner([redacted])")
    }
}

impl SessionSigner {
    /// A signer keyed with `secret` (any length; HMAC hashes long keys).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                .expect("HMAC takes keys of any length"),
        }
    }

    /// A signer with a random secret (tests, and a registry built without
    /// configuration): its ids are valid for this process only.
    pub fn random() -> Self {
        Self::new(&super::random_secret())
    }

    fn keyed(&self, stream_id: Uuid, id: Uuid) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(TAG);
        mac.update(stream_id.as_bytes());
        mac.update(id.as_bytes());
        mac
    }

    /// Signs `id` for `stream_id`.
    pub fn sign(&self, stream_id: Uuid, id: Uuid) -> SignedSid {
        let tag = self.keyed(stream_id, id).finalize().into_bytes();
        SignedSid {
            id,
            text: format!("{}.{}", id.hyphenated(), hex::encode(&tag[..MAC_BYTES])),
        }
    }

    /// A new random id signed for `stream_id`.
    pub fn mint(&self, stream_id: Uuid) -> SignedSid {
        self.sign(stream_id, Uuid::new_v4())
    }

    /// The session id in `presented` if this server signed it for
    /// `stream_id`; `None` for anything else (malformed, forged, another
    /// stream's, another secret's). Never panics; the tag is compared in
    /// constant time.
    pub fn verify(&self, stream_id: Uuid, presented: &str) -> Option<Uuid> {
        if presented.len() != SIGNED_ID_LEN {
            return None;
        }
        let (id, mac) = presented.split_once('.')?;
        if id.len() != 36 {
            return None;
        }
        let id = Uuid::try_parse(id).ok()?;
        let mut tag = [0u8; MAC_BYTES];
        hex::decode_to_slice(mac, &mut tag).ok()?;
        self.keyed(stream_id, id)
            .verify_truncated_left(&tag)
            .ok()
            .map(|()| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_ids_verify_for_their_stream_only() {
        let signer = SessionSigner::new(b"a session secret of some length");
        let (stream, other) = (Uuid::new_v4(), Uuid::new_v4());
        let sid = signer.mint(stream);
        assert_eq!(sid.as_str().len(), SIGNED_ID_LEN);
        assert_eq!(signer.verify(stream, sid.as_str()), Some(sid.id()));
        assert!(sid.as_str().starts_with(&sid.id().to_string()));
        // Another stream, another secret: refused.
        assert_eq!(signer.verify(other, sid.as_str()), None);
        let stranger = SessionSigner::new(b"another secret");
        assert_eq!(stranger.verify(stream, sid.as_str()), None);
        // The same secret (another replica) accepts it.
        let replica = SessionSigner::new(b"a session secret of some length");
        assert_eq!(replica.verify(stream, sid.as_str()), Some(sid.id()));
        // Signing is deterministic.
        assert_eq!(signer.sign(stream, sid.id()), sid);
    }

    #[test]
    fn made_up_and_tampered_ids_are_refused() {
        let signer = SessionSigner::random();
        let stream = Uuid::new_v4();
        let sid = signer.mint(stream);
        let text = sid.as_str();
        // Every single-character change of the id or the tag is refused.
        for i in 0..text.len() {
            if i == 36 {
                continue;
            }
            let mut b = text.as_bytes().to_vec();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(b).unwrap();
            if changed.to_ascii_lowercase() != text {
                assert_eq!(signer.verify(stream, &changed), None, "{changed}");
            }
        }
        let bare = Uuid::new_v4().to_string();
        for bad in [
            "",
            ".",
            bare.as_str(),
            &format!("{bare}.{}", "0".repeat(32)),
            &format!("{bare}.{}", "zz".repeat(16)),
            &format!("{}.{}", &text[..36], &text[37..69].to_uppercase()[..31]),
            &format!("{}x", &text[..68]),
            &text[..68],
            &format!("{}é{}", &text[..35], &text[37..]),
            "ö".repeat(35).as_str(),
        ] {
            assert_eq!(signer.verify(stream, bad), None, "{bad:?}");
        }
        // A tag truncated or padded is refused (the length is fixed).
        assert_eq!(signer.verify(stream, &format!("{text}0")), None);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let s = format!("{:?}", SessionSigner::new(b"very secret key"));
        assert!(!s.contains("very"), "{s}");
    }
}
