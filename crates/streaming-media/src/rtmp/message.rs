//! RTMP messages (RTMP 1.0 §5.4 protocol control, §6.2 user control, §7.1
//! message types, §7.2 commands): type ids, control message bodies, command
//! parsing and the aggregate message split (§7.1.6).

use bytes::Bytes;

use super::RtmpError;
use super::chunk::RawMessage;
use crate::amf0::{self, Amf0Value, DecodeLimits};

/// Message type ids (RTMP 1.0 §5.4, §7.1).
pub(crate) mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// User control event types (RTMP 1.0 §7.1.7).
pub(crate) mod user_control {
    pub const STREAM_BEGIN: u16 = 0;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Chunk stream ids this crate sends on (the ones FFmpeg uses).
pub(crate) mod csid {
    /// Protocol control and user control messages (RTMP 1.0 §5.4).
    pub const CONTROL: u32 = 2;
    /// NetConnection commands.
    pub const COMMAND: u32 = 3;
    pub const AUDIO: u32 = 4;
    /// Data messages (`@setDataFrame`) and NetStream status.
    pub const DATA: u32 = 5;
    pub const VIDEO: u32 = 6;
    /// NetStream commands (`publish`).
    pub const STREAM_COMMAND: u32 = 8;
}

/// The body of an AMF0 or AMF3 (type 15/17) command or data message: AMF3
/// variants start with a 0 format byte, then carry AMF0 values.
pub(crate) fn amf_body(msg: &RawMessage) -> Bytes {
    let amf3 = matches!(msg.type_id, msg_type::DATA_AMF3 | msg_type::COMMAND_AMF3);
    if amf3 && msg.payload.first() == Some(&0) {
        msg.payload.slice(1..)
    } else {
        msg.payload.clone()
    }
}

pub(crate) fn amf_error(msg: &RawMessage, source: amf0::Amf0Error) -> RtmpError {
    RtmpError::Amf {
        csid: msg.csid,
        type_id: msg.type_id,
        msid: msg.msid,
        offset: msg.offset,
        source,
    }
}

pub(crate) fn malformed(msg: &RawMessage, reason: &'static str) -> RtmpError {
    RtmpError::MalformedMessage {
        csid: msg.csid,
        type_id: msg.type_id,
        length: msg.payload.len(),
        reason,
    }
}

/// A decoded command message (RTMP 1.0 §7.2): name, transaction id, command
/// object (Null when absent) and the remaining arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command {
    pub name: String,
    pub txn: f64,
    pub object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

impl Command {
    /// Decodes the command within `limits` (checked while decoding).
    pub(crate) fn parse(msg: &RawMessage, limits: DecodeLimits) -> Result<Command, RtmpError> {
        let values =
            amf0::decode_all_with(&amf_body(msg), limits).map_err(|e| amf_error(msg, e))?;
        let mut it = values.into_iter();
        let name = match it.next() {
            Some(Amf0Value::String(s)) => s,
            _ => return Err(malformed(msg, "command name is not an AMF0 string")),
        };
        let txn = it.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let object = it.next().unwrap_or(Amf0Value::Null);
        Ok(Command {
            name,
            txn,
            object,
            args: it.collect(),
        })
    }

    /// The string argument at `i` (after the command object).
    pub(crate) fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Amf0Value::as_str)
    }

    /// The first argument that is an object (the info object of `onStatus`
    /// and `_error`), or the command object itself.
    pub(crate) fn info(&self) -> Option<&Amf0Value> {
        self.args
            .iter()
            .find(|v| matches!(v, Amf0Value::Object(_)))
            .or(matches!(self.object, Amf0Value::Object(_)).then_some(&self.object))
    }
}

/// Encode a command: name, transaction id, then `rest` (command object first).
pub(crate) fn command(name: &str, txn: f64, rest: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    amf0::encode(&Amf0Value::from(name), &mut out);
    amf0::encode(&Amf0Value::Number(txn), &mut out);
    for v in rest {
        amf0::encode(v, &mut out);
    }
    out
}

/// An object from string keys.
pub(crate) fn object(props: Vec<(&str, Amf0Value)>) -> Amf0Value {
    Amf0Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// The info object of `onStatus` and `_error` (level, code, description).
pub(crate) fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    object(vec![
        ("level", level.into()),
        ("code", code.into()),
        ("description", description.into()),
    ])
}

/// (level, code, description) of an info object; missing fields are empty.
pub(crate) fn status_fields(info: Option<&Amf0Value>) -> (String, String, String) {
    let field = |k: &str| {
        info.and_then(|i| i.get(k))
            .and_then(Amf0Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("level"), field("code"), field("description"))
}

/// Big-endian u32 at the start of a control message body.
pub(crate) fn be32(msg: &RawMessage, reason: &'static str) -> Result<u32, RtmpError> {
    match msg.payload.get(..4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(malformed(msg, reason)),
    }
}

/// One sub-message of an aggregate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubMessage {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Split an aggregate message (RTMP 1.0 §7.1.6): FLV-style tags (type 1,
/// length 3, timestamp 3 + extension 1, stream id 3), each followed by a
/// 4-byte back pointer (tolerated missing after the last tag). Timestamps are
/// moved so that the first sub-message has the aggregate's timestamp.
pub(crate) fn split_aggregate(msg: &RawMessage) -> Result<Vec<SubMessage>, RtmpError> {
    let p = &msg.payload;
    let mut subs = Vec::new();
    let mut pos = 0;
    let mut base: Option<u32> = None;
    while pos < p.len() {
        let Some(h) = p.get(pos..pos + 11) else {
            return Err(malformed(msg, "aggregate: truncated sub-message header"));
        };
        let type_id = h[0];
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = pos + 11;
        let end = start + len;
        if end > p.len() {
            return Err(malformed(
                msg,
                "aggregate: sub-message longer than the aggregate",
            ));
        }
        let first = *base.get_or_insert(ts);
        subs.push(SubMessage {
            type_id,
            timestamp: msg.timestamp.wrapping_add(ts.wrapping_sub(first)),
            payload: p.slice(start..end),
        });
        pos = end;
        if pos < p.len() {
            if p.len() - pos < 4 {
                return Err(malformed(msg, "aggregate: truncated back pointer"));
            }
            pos += 4;
        }
    }
    Ok(subs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(type_id: u8, timestamp: u32, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid: 3,
            timestamp,
            type_id,
            msid: 1,
            payload: Bytes::copy_from_slice(payload),
            offset: 0,
        }
    }

    #[test]
    fn aggregate_split_renormalizes_time() {
        let mut p = Vec::new();
        for (t, ts, body) in [(9u8, 0x0100_0010u32, &b"vid"[..]), (8, 0x0100_0030, b"au")] {
            p.push(t);
            p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            p.extend_from_slice(&ts.to_be_bytes()[1..]);
            p.push((ts >> 24) as u8);
            p.extend_from_slice(&[0, 0, 0]);
            p.extend_from_slice(body);
            p.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        let subs = split_aggregate(&raw(22, 1000, &p)).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!((subs[0].type_id, subs[0].timestamp), (9, 1000));
        assert_eq!(&subs[0].payload[..], b"vid");
        assert_eq!((subs[1].type_id, subs[1].timestamp), (8, 1032));
        // Missing final back pointer is tolerated; a cut header or body is not.
        assert_eq!(
            split_aggregate(&raw(22, 0, &p[..p.len() - 4]))
                .unwrap()
                .len(),
            2
        );
        assert!(split_aggregate(&raw(22, 0, &p[..p.len() - 2])).is_err());
        assert!(split_aggregate(&raw(22, 0, &p[..5])).is_err());
        assert!(split_aggregate(&raw(22, 0, &p[..12])).is_err());
    }

    #[test]
    fn command_parse() {
        let body = command(
            "publish",
            5.0,
            &[Amf0Value::Null, "key?x=1".into(), "live".into()],
        );
        let c = Command::parse(&raw(20, 0, &body), DecodeLimits::default()).unwrap();
        assert_eq!(c.name, "publish");
        assert_eq!(c.txn, 5.0);
        assert_eq!(c.arg_str(0), Some("key?x=1"));
        assert_eq!(c.arg_str(1), Some("live"));
        // AMF3 command: leading format byte.
        let mut amf3 = vec![0];
        amf3.extend_from_slice(&body);
        assert_eq!(
            Command::parse(&raw(17, 0, &amf3), DecodeLimits::default()).unwrap(),
            c
        );
        assert!(matches!(
            Command::parse(&raw(20, 0, &[0x00, 0x3f]), DecodeLimits::default()),
            Err(RtmpError::Amf { .. })
        ));
        assert!(matches!(
            Command::parse(&raw(20, 0, &[0x05]), DecodeLimits::default()),
            Err(RtmpError::MalformedMessage { .. })
        ));
    }
}
