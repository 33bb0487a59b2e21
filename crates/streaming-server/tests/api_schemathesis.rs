//! schemathesis (from PyPI; `scripts/test` installs the pinned version)
//! against `/api/openapi.json` of a live server, on SQLite and on
//! PostgreSQL: every check it has (no server errors, responses that match
//! the documented status codes, content types, headers and schemas,
//! invalid input rejected, valid input accepted, stateful create → read →
//! delete links). Any failure, or any part of the schema it could not
//! resolve, fails the test.

mod common;

use std::time::Duration;

use common::{Backend, TestServer, require};

async fn schemathesis_finds_nothing(backend: Backend) {
    require(
        "schemathesis",
        "schemathesis (pip install schemathesis==4.32.5; scripts/test does this)",
    );
    let ts = TestServer::start_on(backend).await;
    // Some data for the operations that read existing streams.
    for name in ["one", "two"] {
        ts.create_stream(name).await;
    }
    let schema = ts.url("/api/openapi.json");
    let report = ts.dir.path().join("schemathesis.xml");
    let report_arg = report.display().to_string();
    // Run inside the temp dir: schemathesis and Hypothesis keep state in the CWD.
    let mut cmd = tokio::process::Command::new("schemathesis");
    cmd.args([
        "run",
        &schema,
        "--header",
        "Authorization: Bearer test-admin-token-0123456789abcdef",
        "--checks",
        "all",
        "--max-examples",
        "40",
        "--seed",
        "20240601",
        // One worker: Python 3.11.7's `ast` module is not thread-safe (CPython
        // gh-106905, "AST constructor recursion depth mismatch"), which
        // hypothesis hits when two workers describe strategies at once.
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        &report_arg,
    ])
    .current_dir(ts.dir.path())
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(400), cmd.output())
        .await
        .expect("schemathesis finished within 400 s")
        .expect("schemathesis runs");
    let ok = output.status.success();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    let text = format!("{out}\n{err}");
    assert!(ok, "schemathesis failed against the live server:\n{text}");
    assert!(
        !text.contains("Unresolvable"),
        "schemathesis could not resolve part of the schema:\n{text}"
    );
    assert!(text.contains("Open API 3.1"), "{text}");
    // It really ran: every operation, hundreds of cases, none failed.
    let summary = text
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no test-case summary in:\n{text}"));
    let generated: u64 = summary
        .trim()
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(generated >= 200, "only {generated} cases: {summary}");
    assert!(!summary.contains("failed"), "{summary}");
    assert!(
        text.contains("Tested: 16"),
        "not every operation was tested:\n{text}"
    );
    ts.ts.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_on_sqlite() {
    schemathesis_finds_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_on_postgres() {
    schemathesis_finds_nothing(Backend::Postgres).await;
}
