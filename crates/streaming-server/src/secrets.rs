//! Secrets at start (T088): the admin token, the `/metrics` token and the
//! session-signing key, each configured (flag, environment, `*_FILE`, config
//! file) or generated once into the data dir (mode 0600).
//!
//! A token shorter than [`MIN_TOKEN_CHARS`] is refused at start with a clear
//! error, whether configured or read from the data dir (an empty
//! `DATA_DIR/admin_token` is a mistake, never an open door). Secrets are
//! never logged; only the generated admin and metrics tokens are printed
//! once, on standard output, when they are made.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use streaming_core::config::{MIN_TOKEN_CHARS, Secret};

/// What a secret is called in messages, and the file it is kept in.
pub struct SecretSpec {
    /// "admin token", …
    pub what: &'static str,
    /// How to configure it (for the error message).
    pub how: &'static str,
    /// File name under the data dir.
    pub file: &'static str,
    /// Prefix of a generated value.
    pub prefix: &'static str,
    /// Print a generated value once (tokens an operator must use).
    pub print: bool,
}

pub const ADMIN_TOKEN: SecretSpec = SecretSpec {
    what: "admin token",
    how: "STREAMING_ADMIN_TOKEN, STREAMING_ADMIN_TOKEN_FILE or admin_token",
    file: "admin_token",
    prefix: "adm_",
    print: true,
};

pub const METRICS_TOKEN: SecretSpec = SecretSpec {
    what: "metrics token",
    how: "STREAMING_METRICS_TOKEN, STREAMING_METRICS_TOKEN_FILE or [metrics] token",
    file: "metrics_token",
    prefix: "met_",
    print: true,
};

pub const SESSION_SECRET: SecretSpec = SecretSpec {
    what: "session secret",
    how: "STREAMING_SESSION_SECRET, STREAMING_SESSION_SECRET_FILE or [sessions] secret",
    file: "session_secret",
    prefix: "ses_",
    print: false,
};

fn check_len(spec: &SecretSpec, value: &str, source: &str) -> anyhow::Result<()> {
    let n = value.chars().count();
    if n < MIN_TOKEN_CHARS {
        let what = if n == 0 { "empty" } else { "too short" };
        bail!(
            "the {} from {source} is {what} ({n} characters; at least {MIN_TOKEN_CHARS} are required). \
             Set a longer one with {}, or delete the file to have one generated",
            spec.what,
            spec.how
        );
    }
    Ok(())
}

/// The secret in force: configured, else kept in `data_dir/spec.file`,
/// else generated there.
pub fn load_or_generate(
    spec: &SecretSpec,
    configured: Option<&Secret>,
    data_dir: &Path,
) -> anyhow::Result<String> {
    if let Some(s) = configured {
        let v = s.expose().trim();
        check_len(spec, v, "the configuration")?;
        return Ok(v.to_string());
    }
    let path = data_dir.join(spec.file);
    match std::fs::read_to_string(&path) {
        Ok(t) => {
            let v = t.trim();
            check_len(spec, v, &path.display().to_string())?;
            return Ok(v.to_string());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let token = streaming_core::keys::generate()
        .plaintext
        .replacen("sk_", spec.prefix, 1);
    write_secret(&path, &token)?;
    if spec.print {
        println!(
            "Generated the {} (saved to {}, shown once): {token}",
            spec.what,
            path.display()
        );
    }
    Ok(token)
}

fn write_secret(path: &Path, value: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(value.as_bytes())?;
    Ok(())
}

/// Reads a secret from a file named by a `*_FILE` setting (trailing
/// newlines dropped), so that it never shows in `ps` or the environment.
pub fn read_secret_file(path: &Path, setting: &str) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {setting} ({})", path.display()))?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_empty_and_good_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_or_generate(&ADMIN_TOKEN, Some(&Secret::new("short")), dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("too short") && err.contains("32"), "{err}");
        std::fs::write(dir.path().join("admin_token"), "\n").unwrap();
        let err = load_or_generate(&ADMIN_TOKEN, None, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
        std::fs::remove_file(dir.path().join("admin_token")).unwrap();
        let made = load_or_generate(&ADMIN_TOKEN, None, dir.path()).unwrap();
        assert!(made.starts_with("adm_") && made.len() >= 32, "{made}");
        assert_eq!(
            load_or_generate(&ADMIN_TOKEN, None, dir.path()).unwrap(),
            made
        );
        let good = "x".repeat(32);
        assert_eq!(
            load_or_generate(&ADMIN_TOKEN, Some(&Secret::new(good.clone())), dir.path()).unwrap(),
            good
        );
    }
}
