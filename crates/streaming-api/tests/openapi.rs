//! The OpenAPI document itself: version 3.1, every `$ref` resolves, every
//! admin operation declares the bearer scheme and its 401, every operation
//! that reads the database declares its 503, and every error response is a
//! problem document.

use serde_json::Value;

fn doc() -> Value {
    serde_json::to_value(streaming_api::openapi()).unwrap()
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn is_openapi_3_1_and_every_ref_resolves() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolvable $ref {r}");
    }
}

#[test]
fn operations_declare_auth_and_errors() {
    let doc = doc();
    let public = [
        "/health",
        "/ready",
        "/api/v1/streams/{id}/status",
        "/api/v1/sessions/{session_id}/events",
        "/api/v1/streams/{id}/sessions",
    ];
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let responses = op["responses"].as_object().unwrap();
            let name = format!("{method} {path}");
            if public.contains(&path.as_str()) {
                assert!(op.get("security").is_none(), "{name} is public");
            } else {
                assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{name}");
                assert!(responses.contains_key("401"), "{name} lacks 401");
                assert!(responses.contains_key("404"), "{name} lacks 404");
            }
            if !path.starts_with("/health") && !path.starts_with("/ready") {
                assert!(responses.contains_key("503"), "{name} lacks 503");
            }
            for (code, resp) in responses {
                if code.starts_with('4') || code.starts_with('5') {
                    let content = resp["content"].as_object();
                    if path == "/ready" {
                        continue;
                    }
                    let content = content.unwrap_or_else(|| panic!("{name} {code} has no content"));
                    assert!(
                        content.contains_key("application/problem+json"),
                        "{name} {code}: {content:?}"
                    );
                }
            }
        }
    }
    assert_eq!(count, 16, "operations in the document");
}

#[test]
fn asyncapi_document_is_3_0_and_every_ref_resolves() {
    let doc: Value = serde_json::from_str(streaming_api::ASYNCAPI).expect("asyncapi.json is JSON");
    assert_eq!(doc["asyncapi"], "3.0.0");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() >= 12);
    for r in all {
        let pointer = r.strip_prefix('#').expect("local $ref");
        assert!(doc.pointer(pointer).is_some(), "unresolvable $ref {r}");
    }
    let messages = doc["channels"]["stream"]["messages"].as_object().unwrap();
    let names: Vec<&str> = messages.keys().map(String::as_str).collect();
    assert_eq!(names, ["metrics", "qualities", "snapshot", "status"]);
    for name in names {
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["properties"]["type"]["const"], name);
        assert_eq!(schema["additionalProperties"], false, "{name}");
    }
}
