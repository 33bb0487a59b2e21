//! AMF0 decoding (AMF0 §2). Bounded while it runs: no recursion deeper than
//! [`DecodeLimits::max_depth`] (at most [`MAX_DEPTH`]), no more values than
//! [`DecodeLimits::max_values`], no allocation larger than the remaining input.

use super::{Amf0Error, Amf0Value, DecodeLimits, MAX_DEPTH, marker};

/// Decode every value in `buf` (an RTMP command or data message body), with
/// the default limits (nesting up to [`MAX_DEPTH`], any number of values).
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    decode_all_with(buf, DecodeLimits::default())
}

/// [`decode_all`] within `limits`: decoding stops at the first value over a
/// limit, so at most `limits.max_values` values are ever built.
pub fn decode_all_with(buf: &[u8], limits: DecodeLimits) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut d = Decoder::new(buf, limits);
    let mut values = Vec::new();
    while d.pos < buf.len() {
        values.push(d.value(0)?);
    }
    Ok(values)
}

/// Decode the first value in `buf`; returns it with the number of bytes it used.
pub fn decode_one(buf: &[u8]) -> Result<(Amf0Value, usize), Amf0Error> {
    decode_one_with(buf, DecodeLimits::default())
}

/// [`decode_one`] within `limits` (the values nested in it count).
pub fn decode_one_with(buf: &[u8], limits: DecodeLimits) -> Result<(Amf0Value, usize), Amf0Error> {
    let mut d = Decoder::new(buf, limits);
    let v = d.value(0)?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Values started so far.
    values: usize,
    max_values: usize,
    max_depth: usize,
}

impl<'a> Decoder<'a> {
    fn new(buf: &'a [u8], limits: DecodeLimits) -> Self {
        Self {
            buf,
            pos: 0,
            values: 0,
            max_values: limits.max_values,
            max_depth: limits.max_depth.min(MAX_DEPTH),
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        if self.remaining() < n {
            return Err(Amf0Error::UnexpectedEof {
                offset: self.buf.len(),
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, len: usize) -> Result<String, Amf0Error> {
        let offset = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Amf0Error::InvalidUtf8 { offset })
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        let offset = self.pos;
        if self.values >= self.max_values {
            return Err(Amf0Error::TooManyValues {
                offset,
                max: self.max_values,
            });
        }
        self.values += 1;
        let m = self.u8()?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(self.f64()?),
            marker::BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            marker::STRING => Amf0Value::String(self.short_string()?),
            marker::OBJECT => {
                let depth = self.deeper(depth, offset)?;
                Amf0Value::Object(self.properties(depth)?)
            }
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::ECMA_ARRAY => {
                let depth = self.deeper(depth, offset)?;
                // The count is advisory (AMF0 §2.10); the object-end marker ends it.
                let _count = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth)?)
            }
            marker::OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd { offset }),
            marker::STRICT_ARRAY => {
                let depth = self.deeper(depth, offset)?;
                let count = self.u32()?;
                // Every element takes at least one byte.
                if count as usize > self.remaining() {
                    return Err(Amf0Error::TooManyElements {
                        offset,
                        count,
                        remaining: self.remaining(),
                    });
                }
                // Capacity within the values still allowed: a count the
                // limit refuses allocates nothing for it.
                let allowed = self.max_values.saturating_sub(self.values);
                let mut items = Vec::with_capacity((count as usize).min(allowed));
                for _ in 0..count {
                    items.push(self.value(depth)?);
                }
                Amf0Value::StrictArray(items)
            }
            marker::DATE => {
                let millis = self.f64()?;
                let timezone = self.u16()? as i16;
                Amf0Value::Date { millis, timezone }
            }
            marker::LONG_STRING => {
                let len = self.u32()? as usize;
                Amf0Value::LongString(self.utf8(len)?)
            }
            marker::MOVIECLIP
            | marker::REFERENCE
            | marker::UNSUPPORTED
            | marker::RECORDSET
            | marker::XML_DOCUMENT
            | marker::TYPED_OBJECT
            | marker::AVMPLUS => return Err(Amf0Error::UnsupportedMarker { marker: m, offset }),
            _ => return Err(Amf0Error::UnknownMarker { marker: m, offset }),
        })
    }

    fn deeper(&self, depth: usize, offset: usize) -> Result<usize, Amf0Error> {
        if depth >= self.max_depth {
            Err(Amf0Error::TooDeep {
                offset,
                max: self.max_depth,
            })
        } else {
            Ok(depth + 1)
        }
    }

    /// Properties of an object or ECMA array up to and including the
    /// empty-key object-end marker (AMF0 §2.5, §2.11).
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.buf.get(self.pos) == Some(&marker::OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let value = self.value(depth)?;
            props.push((key, value));
        }
    }
}
