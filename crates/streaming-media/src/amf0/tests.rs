use super::*;
use proptest::prelude::*;

fn obj(props: &[(&str, Amf0Value)]) -> Amf0Value {
    Amf0Value::Object(
        props
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

#[test]
fn known_bytes() {
    // "connect", 1.0, {app: "live"}: the start of every RTMP session.
    let bytes: &[u8] = &[
        0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', //
        0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, //
        0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e', //
        0x00, 0x00, 0x09,
    ];
    let values = decode_all(bytes).unwrap();
    assert_eq!(
        values,
        vec![
            Amf0Value::from("connect"),
            Amf0Value::Number(1.0),
            obj(&[("app", "live".into())]),
        ]
    );
    assert_eq!(
        values[2].get("app").and_then(Amf0Value::as_str),
        Some("live")
    );
    assert_eq!(values[1].as_f64(), Some(1.0));
    assert_eq!(encode_all(&values), bytes);
}

#[test]
fn all_types_round_trip() {
    let v = vec![
        Amf0Value::Number(-2.5),
        Amf0Value::Boolean(true),
        Amf0Value::String("ü".into()),
        Amf0Value::Null,
        Amf0Value::Undefined,
        Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(0.0))]),
        Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Boolean(false)]),
        Amf0Value::Date {
            millis: 1.0e12,
            timezone: -60,
        },
        Amf0Value::LongString("long".into()),
        obj(&[("", Amf0Value::Number(1.0))]),
    ];
    assert_eq!(decode_all(&encode_all(&v)).unwrap(), v);
}

#[test]
fn ecma_array_count_is_not_trusted() {
    // Count says 100, one property, then the end marker.
    let bytes = [
        0x08, 0, 0, 0, 100, 0, 1, b'a', 0x05, 0, 0, 0x09, //
    ];
    assert_eq!(
        decode_all(&bytes).unwrap(),
        vec![Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Null)])]
    );
}

#[test]
fn decode_one_reports_length() {
    let mut bytes = encode_all(&["@setDataFrame".into(), "onMetaData".into()]);
    bytes.push(0x05);
    let (v, n) = decode_one(&bytes).unwrap();
    assert_eq!(v.as_str(), Some("@setDataFrame"));
    assert_eq!(n, 16);
}

#[test]
fn malformed_inputs_are_typed_errors() {
    use Amf0Error::*;
    let cases: &[(&[u8], Amf0Error)] = &[
        (
            &[0x00, 1, 2],
            UnexpectedEof {
                offset: 3,
                needed: 6,
            },
        ),
        (
            &[0x02, 0, 5, b'a'],
            UnexpectedEof {
                offset: 4,
                needed: 4,
            },
        ),
        (
            &[0x04],
            UnsupportedMarker {
                marker: 4,
                offset: 0,
            },
        ),
        (
            &[0x05, 0x07, 0, 1],
            UnsupportedMarker {
                marker: 7,
                offset: 1,
            },
        ),
        (
            &[0x10],
            UnsupportedMarker {
                marker: 0x10,
                offset: 0,
            },
        ),
        (
            &[0x11, 0x02],
            UnsupportedMarker {
                marker: 0x11,
                offset: 0,
            },
        ),
        (
            &[0x0d],
            UnsupportedMarker {
                marker: 0x0d,
                offset: 0,
            },
        ),
        (
            &[0x12],
            UnknownMarker {
                marker: 0x12,
                offset: 0,
            },
        ),
        (
            &[0xff],
            UnknownMarker {
                marker: 0xff,
                offset: 0,
            },
        ),
        (&[0x09], UnexpectedObjectEnd { offset: 0 }),
        (&[0x03, 0, 1, b'k', 0x09], UnexpectedObjectEnd { offset: 4 }),
        (&[0x02, 0, 2, 0xc3, 0x28], InvalidUtf8 { offset: 3 }),
        (
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05],
            TooManyElements {
                offset: 0,
                count: u32::MAX,
                remaining: 1,
            },
        ),
        // Object without its end marker.
        (
            &[0x03, 0, 1, b'k', 0x05],
            UnexpectedEof {
                offset: 5,
                needed: 2,
            },
        ),
        (
            &[0x0c, 0xff, 0xff, 0xff, 0xff],
            UnexpectedEof {
                offset: 5,
                needed: u32::MAX as usize,
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode_all(bytes).as_ref(), Err(want), "{bytes:02x?}");
    }
}

#[test]
fn nesting_is_bounded() {
    let nest = |n: usize| {
        let mut b = Vec::new();
        for _ in 0..n {
            b.extend_from_slice(&[0x03, 0, 1, b'k']);
        }
        b.push(0x05);
        for _ in 0..n {
            b.extend_from_slice(&[0, 0, 0x09]);
        }
        b
    };
    assert!(decode_all(&nest(MAX_DEPTH)).is_ok());
    assert_eq!(
        decode_all(&nest(MAX_DEPTH + 1)),
        Err(Amf0Error::TooDeep {
            offset: 4 * MAX_DEPTH,
            max: MAX_DEPTH
        })
    );
    // 10 000 levels of strict arrays: an error, not a stack overflow.
    let deep: Vec<u8> = std::iter::repeat_n([0x0a, 0, 0, 0, 1], 10_000)
        .flatten()
        .collect();
    assert!(matches!(decode_all(&deep), Err(Amf0Error::TooDeep { .. })));
}

#[test]
fn value_count_is_enforced_while_decoding() {
    let limits = DecodeLimits {
        max_values: 1024,
        max_depth: 8,
    };
    // 64 KiB of 1-byte nulls: value 1,025 (at offset 1,024) is refused.
    let nulls = vec![marker::NULL; 64 * 1024];
    assert_eq!(
        decode_all_with(&nulls, limits),
        Err(Amf0Error::TooManyValues {
            offset: 1024,
            max: 1024
        })
    );
    assert_eq!(decode_all_with(&nulls[..1024], limits).unwrap().len(), 1024);
    // Nested values count: an object holding 1,023 properties is 1,024 values.
    let object = |props: usize| {
        let mut b = vec![marker::OBJECT];
        for _ in 0..props {
            b.extend_from_slice(&[0, 1, b'k', marker::NULL]);
        }
        b.extend_from_slice(&[0, 0, marker::OBJECT_END]);
        b
    };
    assert!(decode_one_with(&object(1023), limits).is_ok());
    assert_eq!(
        decode_one_with(&object(1024), limits),
        Err(Amf0Error::TooManyValues {
            offset: 1 + 1023 * 4 + 3,
            max: 1024
        })
    );
    // A strict array claiming 60,000 elements: refused at element 1,024
    // (the array itself is value 1), and nothing was sized by its count.
    let mut arr = vec![marker::STRICT_ARRAY];
    arr.extend_from_slice(&60_000u32.to_be_bytes());
    arr.extend(std::iter::repeat_n(marker::NULL, 60_000));
    assert_eq!(
        decode_all_with(&arr, limits),
        Err(Amf0Error::TooManyValues {
            offset: 5 + 1023,
            max: 1024
        })
    );
    // The default limits count nothing.
    assert_eq!(decode_all(&nulls).unwrap().len(), 64 * 1024);
}

#[test]
fn depth_limit_below_the_maximum() {
    let limits = DecodeLimits {
        max_values: 1024,
        max_depth: 8,
    };
    let nest = |n: usize| {
        let mut b = Vec::new();
        for _ in 0..n {
            b.extend_from_slice(&[0x03, 0, 1, b'k']);
        }
        b.push(0x05);
        for _ in 0..n {
            b.extend_from_slice(&[0, 0, 0x09]);
        }
        b
    };
    assert!(decode_all_with(&nest(8), limits).is_ok());
    assert_eq!(
        decode_all_with(&nest(9), limits),
        Err(Amf0Error::TooDeep { offset: 32, max: 8 })
    );
    // A limit above MAX_DEPTH is read as MAX_DEPTH.
    let loose = DecodeLimits {
        max_values: usize::MAX,
        max_depth: 1000,
    };
    assert_eq!(
        decode_all_with(&nest(MAX_DEPTH + 1), loose),
        Err(Amf0Error::TooDeep {
            offset: 4 * MAX_DEPTH,
            max: MAX_DEPTH
        })
    );
}

fn arb_value() -> impl Strategy<Value = Amf0Value> {
    let leaf = prop_oneof![
        any::<f64>()
            .prop_filter("NaN never equals itself", |n| !n.is_nan())
            .prop_map(Amf0Value::Number),
        any::<bool>().prop_map(Amf0Value::Boolean),
        ".{0,20}".prop_map(Amf0Value::String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
        (
            any::<f64>().prop_filter("not NaN", |n| !n.is_nan()),
            any::<i16>()
        )
            .prop_map(|(millis, timezone)| Amf0Value::Date { millis, timezone }),
        ".{0,20}".prop_map(Amf0Value::LongString),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let props = prop::collection::vec((".{0,10}", inner.clone()), 0..8);
        prop_oneof![
            props.clone().prop_map(Amf0Value::Object),
            props.prop_map(Amf0Value::EcmaArray),
            prop::collection::vec(inner, 0..8).prop_map(Amf0Value::StrictArray),
        ]
    })
}

proptest! {
    #[test]
    fn encode_decode_round_trip(values in prop::collection::vec(arb_value(), 0..6)) {
        let bytes = encode_all(&values);
        prop_assert_eq!(decode_all(&bytes).unwrap(), values);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_all(&bytes);
    }
}
