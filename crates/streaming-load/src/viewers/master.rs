//! What a viewer reads from a master playlist (RFC 8216 §4.3.4): the variant
//! playlists, the lowest-bandwidth one, each variant's default audio
//! rendition, and the session id the server put in their URLs.

use m3u8_rs::{AlternativeMediaType, Playlist};
use reqwest::Url;

/// The playable variants of a master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Master {
    /// Variant (media playlist) URLs, I-frame variants left out.
    pub variants: Vec<Url>,
    /// Index of the lowest-bandwidth variant.
    pub lowest: usize,
    /// Per variant: the audio rendition of its `AUDIO` group that a player
    /// loads (the `DEFAULT=YES` one, else the first with a URI), if any.
    pub audio: Vec<Option<Url>>,
}

/// The session id a server carries in child URLs (`?session=`, `?sid=` or
/// `?session_id=`), if any.
pub fn session_from(url: &Url) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == "session" || k == "sid" || k == "session_id")
        .map(|(_, v)| v.into_owned())
}

/// Reads a master playlist; a media playlist given directly is one variant,
/// itself, without separate audio.
pub fn variants_of(master_url: &Url, body: &[u8]) -> Result<Master, String> {
    let m = match m3u8_rs::parse_playlist_res(body) {
        Ok(Playlist::MasterPlaylist(m)) => m,
        Ok(Playlist::MediaPlaylist(_)) => {
            return Ok(Master {
                variants: vec![master_url.clone()],
                lowest: 0,
                audio: vec![None],
            });
        }
        Err(e) => return Err(format!("not a playlist: {e}")),
    };
    let join = |uri: &str| {
        master_url
            .join(uri)
            .map_err(|e| format!("URI `{uri}`: {e}"))
    };
    let mut out = Master {
        variants: Vec::new(),
        lowest: 0,
        audio: Vec::new(),
    };
    let mut lowest = u64::MAX;
    for v in m.variants.iter().filter(|v| !v.is_i_frame) {
        if v.bandwidth < lowest {
            lowest = v.bandwidth;
            out.lowest = out.variants.len();
        }
        out.variants.push(join(&v.uri)?);
        let group: Vec<_> = m
            .alternatives
            .iter()
            .filter(|a| {
                a.media_type == AlternativeMediaType::Audio
                    && Some(&a.group_id) == v.audio.as_ref()
                    && a.uri.is_some()
            })
            .collect();
        let pick = group.iter().find(|a| a.default).or(group.first());
        out.audio
            .push(pick.and_then(|a| a.uri.as_deref()).map(join).transpose()?);
    }
    if out.variants.is_empty() {
        return Err("master playlist lists no variant".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_resolve_with_lowest_and_audio() {
        let master = Url::parse("http://127.0.0.1:8080/hls/abc/master.m3u8").unwrap();
        let body = b"#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Other\",URI=\"other/index.m3u8\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Audio\",DEFAULT=YES,URI=\"audio/index.m3u8?session=s1\"
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=640x360,AUDIO=\"audio\"
source/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=426x240
240p/index.m3u8?session=s1
";
        let m = variants_of(&master, body).unwrap();
        assert_eq!(m.variants.len(), 2);
        assert_eq!(
            m.variants[0].as_str(),
            "http://127.0.0.1:8080/hls/abc/source/index.m3u8"
        );
        assert_eq!(m.lowest, 1);
        assert_eq!(
            m.audio[0].as_ref().map(Url::as_str),
            Some("http://127.0.0.1:8080/hls/abc/audio/index.m3u8?session=s1")
        );
        assert_eq!(m.audio[1], None, "no AUDIO group on that variant");
        assert_eq!(session_from(&m.variants[1]).as_deref(), Some("s1"));
        assert!(variants_of(&master, b"garbage").is_err());
    }

    #[test]
    fn a_media_playlist_is_its_own_variant() {
        let url = Url::parse("http://127.0.0.1:8080/hls/abc/source/index.m3u8").unwrap();
        let body = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nsegment-1.m4s\n";
        let m = variants_of(&url, body).unwrap();
        assert_eq!(m.variants, [url]);
        assert_eq!(m.audio, [None]);
    }
}
