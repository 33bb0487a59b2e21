//! AMF0 encoding (AMF0 §2).

use super::{Amf0Value, marker};

/// Append the AMF0 encoding of `value` to `out`.
///
/// A [`Amf0Value::String`] longer than 65535 bytes is written as a long string
/// (AMF0 §2.14), since the short form cannot carry it. Property names longer
/// than 65535 bytes (which AMF0 cannot represent) are cut at the last UTF-8
/// character boundary that fits.
pub fn encode(value: &Amf0Value, out: &mut Vec<u8>) {
    match value {
        Amf0Value::Number(n) => {
            out.push(marker::NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => {
            out.push(marker::BOOLEAN);
            out.push(u8::from(*b));
        }
        Amf0Value::String(s) if s.len() <= u16::MAX as usize => {
            out.push(marker::STRING);
            short_string(s, out);
        }
        Amf0Value::String(s) | Amf0Value::LongString(s) => {
            out.push(marker::LONG_STRING);
            // A String cannot exceed isize::MAX; AMF0 cannot exceed u32::MAX.
            let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&s.as_bytes()[..len as usize]);
        }
        Amf0Value::Object(props) => {
            out.push(marker::OBJECT);
            properties(props, out);
        }
        Amf0Value::Null => out.push(marker::NULL),
        Amf0Value::Undefined => out.push(marker::UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.push(marker::ECMA_ARRAY);
            let count = u32::try_from(props.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.push(marker::STRICT_ARRAY);
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            for item in items.iter().take(count as usize) {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.push(marker::DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&timezone.to_be_bytes());
        }
    }
}

/// Encode `values` one after the other (an RTMP command or data message body).
pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * values.len());
    for v in values {
        encode(v, &mut out);
    }
    out
}

fn short_string(s: &str, out: &mut Vec<u8>) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn properties(props: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        short_string(k, out);
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
}
