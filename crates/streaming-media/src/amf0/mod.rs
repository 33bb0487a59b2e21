//! Action Message Format 0 (Adobe "AMF 0 File Format Specification", 2007).
//!
//! Implements the value types of AMF0 §2.2–§2.14 that RTMP publishers use:
//! number (§2.2), boolean (§2.3), string (§2.4), object (§2.5), null (§2.7),
//! undefined (§2.8), ECMA array (§2.10), object end (§2.11), strict array
//! (§2.12), date (§2.13) and long string (§2.14).
//!
//! The markers that only Flash Player remoting uses — movieclip (§2.6),
//! reference (§2.9), unsupported (§2.15), recordset (§2.16), XML document
//! (§2.17), typed object (§2.18) and the switch to AMF3 (§2.19) — are
//! rejected with [`Amf0Error::UnsupportedMarker`].
//!
//! Decoding never panics and never trusts a length or count field: nesting is
//! bounded by [`MAX_DEPTH`] (or a smaller [`DecodeLimits::max_depth`]), the
//! number of values by [`DecodeLimits::max_values`], both enforced while
//! decoding (the decoder stops at the first value over a limit, so a hostile
//! body never expands in memory before it is refused), and no allocation is
//! larger than the bytes that remain in the input.

mod decode;
mod encode;

#[cfg(test)]
mod tests;

pub use decode::{decode_all, decode_all_with, decode_one, decode_one_with};
pub use encode::{encode, encode_all};

/// Deepest nesting of objects and arrays that [`decode_all`] accepts.
pub const MAX_DEPTH: usize = 32;

/// Bounds on one decode call, checked as values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Values decoded in all, nested ones included (every type marker read
    /// counts as one; object keys do not). The value past it fails with
    /// [`Amf0Error::TooManyValues`].
    pub max_values: usize,
    /// Deepest nesting of objects and arrays (at most [`MAX_DEPTH`]; a
    /// larger value is read as [`MAX_DEPTH`]). Past it: [`Amf0Error::TooDeep`].
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    /// Any number of values, nesting up to [`MAX_DEPTH`].
    fn default() -> Self {
        Self {
            max_values: usize::MAX,
            max_depth: MAX_DEPTH,
        }
    }
}

/// AMF0 type markers (AMF0 §2.1).
pub mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0a;
    pub const DATE: u8 = 0x0b;
    pub const LONG_STRING: u8 = 0x0c;
    pub const UNSUPPORTED: u8 = 0x0d;
    pub const RECORDSET: u8 = 0x0e;
    pub const XML_DOCUMENT: u8 = 0x0f;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

/// One AMF0 value. Objects and ECMA arrays keep their properties in wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// A string of at most 65535 UTF-8 bytes (longer ones are written as long strings).
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Associative array; its count field is read but not trusted.
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch; the time zone is reserved (should be 0).
    Date {
        millis: f64,
        timezone: i16,
    },
    LongString(String),
}

impl Amf0Value {
    /// The value of property `key` of an object or ECMA array (first match).
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(props) | Amf0Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The text of a string or long string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}

impl From<&str> for Amf0Value {
    fn from(s: &str) -> Self {
        Amf0Value::String(s.to_owned())
    }
}

impl From<String> for Amf0Value {
    fn from(s: String) -> Self {
        Amf0Value::String(s)
    }
}

impl From<f64> for Amf0Value {
    fn from(n: f64) -> Self {
        Amf0Value::Number(n)
    }
}

impl From<bool> for Amf0Value {
    fn from(b: bool) -> Self {
        Amf0Value::Boolean(b)
    }
}

/// Why an AMF0 byte sequence could not be decoded. `offset` is relative to the
/// start of the buffer given to the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Amf0Error {
    #[error("AMF0: input ends at offset {offset}, {needed} more byte(s) needed")]
    UnexpectedEof { offset: usize, needed: usize },
    #[error("AMF0: unsupported type marker {marker:#04x} at offset {offset}")]
    UnsupportedMarker { marker: u8, offset: usize },
    #[error("AMF0: unknown type marker {marker:#04x} at offset {offset}")]
    UnknownMarker { marker: u8, offset: usize },
    #[error("AMF0: object-end marker outside an object at offset {offset}")]
    UnexpectedObjectEnd { offset: usize },
    #[error("AMF0: nesting deeper than {max} at offset {offset}")]
    TooDeep { offset: usize, max: usize },
    /// The value starting at `offset` is value number `max + 1`.
    #[error("AMF0: more than {max} values, the next one at offset {offset}")]
    TooManyValues { offset: usize, max: usize },
    #[error("AMF0: invalid UTF-8 in string at offset {offset}")]
    InvalidUtf8 { offset: usize },
    #[error(
        "AMF0: strict array at offset {offset} claims {count} elements, only {remaining} bytes remain"
    )]
    TooManyElements {
        offset: usize,
        count: u32,
        remaining: usize,
    },
}
