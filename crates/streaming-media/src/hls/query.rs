//! Per-viewer query substitution over a written playlist (RFC 8216bis §4.1:
//! a playlist is lines; a line not starting with `#` is a URI, and tags carry
//! URIs in `URI="…"` attributes, §4.2).
//!
//! Playlists are rendered once per change and shared; each request then
//! appends its own query (a session id) to every URI in one pass.

/// Appends `?{query}` — or `&{query}` when the URI already has a `?` — to
/// every URI line and every `URI="…"` attribute of the playlist's tags
/// (`EXT-X-MAP`, `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`,
/// `EXT-X-MEDIA`, …). An attribute counts when its name is exactly `URI`
/// (so `X-ASSET-URI` is left alone) and its value is quoted. An empty `query`
/// returns the text as is.
///
/// `query` is inserted verbatim: the caller passes it already
/// percent-encoded, without quotes or line breaks.
pub fn with_query(playlist: &str, query: &str) -> String {
    if query.is_empty() {
        return playlist.to_owned();
    }
    // Every line may gain `?` + query; most playlists have a URI per 1–2 lines.
    let lines = playlist.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut out = String::with_capacity(playlist.len() + lines * (query.len() + 1));
    let mut rest = playlist;
    while !rest.is_empty() {
        let (line, next, had_newline) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..], true),
            None => (rest, "", false),
        };
        let (body, cr) = match line.strip_suffix('\r') {
            Some(body) => (body, "\r"),
            None => (line, ""),
        };
        if body.starts_with("#EXT") {
            tag_line(&mut out, body, query);
        } else if body.starts_with('#') || body.trim().is_empty() {
            out.push_str(body);
        } else {
            out.push_str(body);
            push_query(&mut out, body, query);
        }
        out.push_str(cr);
        if had_newline {
            out.push('\n');
        }
        rest = next;
    }
    out
}

/// Copies a tag line, appending the query inside each quoted `URI` value.
/// The attribute list is walked pair by pair (§4.2), so a quoted value that
/// merely contains `URI=` is not mistaken for the attribute.
fn tag_line(out: &mut String, line: &str, query: &str) {
    let Some(colon) = line.find(':') else {
        out.push_str(line);
        return;
    };
    out.push_str(&line[..=colon]);
    let mut rest = &line[colon + 1..];
    while let Some(eq) = rest.find('=') {
        let name = &rest[..eq];
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        let value_len = match rest.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(close) => {
                    out.push('"');
                    out.push_str(&quoted[..close]);
                    if name.trim() == "URI" {
                        push_query(out, &quoted[..close], query);
                    }
                    out.push('"');
                    close + 2
                }
                // An unterminated quoted string: copied as is.
                None => break,
            },
            None => {
                let len = rest.find(',').unwrap_or(rest.len());
                out.push_str(&rest[..len]);
                len
            }
        };
        rest = &rest[value_len..];
        // Anything else after a value (malformed) is copied as part of the next name.
        if let Some(after) = rest.strip_prefix(',') {
            out.push(',');
            rest = after;
        }
    }
    out.push_str(rest);
}

fn push_query(out: &mut String, uri: &str, query: &str) {
    out.push(if uri.contains('?') { '&' } else { '?' });
    out.push_str(query);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_lines_and_attributes_get_the_query() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\nseg-1.m4s\n\
                    #EXT-X-PART:DURATION=0.500,URI=\"p.m4s?x=1\",INDEPENDENT=YES\n\
                    #EXT-X-DATERANGE:ID=\"a\",X-ASSET-URI=\"ad.m3u8\"\n# comment URI=\"c\"\n\n";
        assert_eq!(
            with_query(text, "sid=abc"),
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4?sid=abc\"\n#EXTINF:2.000,\nseg-1.m4s?sid=abc\n\
             #EXT-X-PART:DURATION=0.500,URI=\"p.m4s?x=1&sid=abc\",INDEPENDENT=YES\n\
             #EXT-X-DATERANGE:ID=\"a\",X-ASSET-URI=\"ad.m3u8\"\n# comment URI=\"c\"\n\n"
        );
    }

    #[test]
    fn only_the_uri_attribute_counts() {
        assert_eq!(
            with_query("#EXT-X-MEDIA:NAME=\"a,URI=\",URI=\"b.m3u8\",X=1", "s=1"),
            "#EXT-X-MEDIA:NAME=\"a,URI=\",URI=\"b.m3u8?s=1\",X=1"
        );
        assert_eq!(with_query("#EXT-X-ENDLIST", "s=1"), "#EXT-X-ENDLIST");
        assert_eq!(
            with_query("#EXT-X-X:URI=u,,A=1", "s=1"),
            "#EXT-X-X:URI=u,,A=1"
        );
    }

    #[test]
    fn crlf_unterminated_and_empty_query() {
        assert_eq!(
            with_query("a.m3u8\r\nb.m3u8", "s=1"),
            "a.m3u8?s=1\r\nb.m3u8?s=1"
        );
        assert_eq!(with_query("a.m3u8\n", ""), "a.m3u8\n");
        assert_eq!(with_query("", "s=1"), "");
        // An unterminated quoted string is copied as is.
        assert_eq!(
            with_query("#EXT-X-MAP:URI=\"init.mp4", "s=1"),
            "#EXT-X-MAP:URI=\"init.mp4"
        );
    }
}
