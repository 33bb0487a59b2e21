//! Crash recovery at start: this node's identity and the repair of what a
//! crash of it left behind.
//!
//! A node is one server process with one data dir. Its id (a random UUID)
//! is generated once and kept in `DATA_DIR/node_id`, so a restart on the
//! same data dir is the same node. The status writer ([`crate::status`])
//! records the node id on every stream it makes ACTIVE; at start,
//! [`end_orphaned_at_start`] ends the streams this node (or no recorded
//! node) left ACTIVE and closes their viewer sessions, before any publish is
//! accepted. Nodes sharing one PostgreSQL never touch each other's streams.

use std::io;
use std::path::Path;

use chrono::Utc;
use tracing::{info, warn};
use uuid::Uuid;

use crate::CoreError;
use crate::repo::{Recovered, StreamRepository};

/// The file under the data dir holding the node id.
pub const NODE_ID_FILE: &str = "node_id";

/// Longest node id accepted from the file.
const MAX_NODE_ID_CHARS: usize = 64;

/// This node's id: the content of `DATA_DIR/node_id`, created with a new
/// random UUID on the first start. A file that holds anything but 1 to 64
/// characters of `[A-Za-z0-9._-]` is an error naming the file (an operator
/// may set a readable id there, e.g. the host name, before the first start).
pub fn node_id(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            let valid = !id.is_empty()
                && id.chars().count() <= MAX_NODE_ID_CHARS
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if valid {
                Ok(id.to_string())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} must hold this node's id: 1 to {MAX_NODE_ID_CHARS} characters of \
                         A-Z a-z 0-9 . _ - (delete the file to get a new random id)",
                        path.display()
                    ),
                ))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = Uuid::new_v4().to_string();
            // Written aside then renamed: a crash never leaves half an id.
            let tmp = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
            std::fs::write(&tmp, format!("{id}\n"))?;
            std::fs::rename(&tmp, &path)?;
            Ok(id)
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("reading {}: {e}", path.display()),
        )),
    }
}

/// Ends the streams `node` left ACTIVE (see
/// [`StreamRepository::end_orphaned_streams`]) and logs what was repaired,
/// in one line. Run it before accepting publishes.
pub async fn end_orphaned_at_start(
    repo: &dyn StreamRepository,
    node: &str,
) -> Result<Recovered, CoreError> {
    let done = repo.end_orphaned_streams(node, Utc::now()).await?;
    if !done.streams.is_empty() {
        let ids: Vec<String> = done.streams.iter().map(|(id, _)| id.to_string()).collect();
        warn!(
            node,
            count = done.streams.len(),
            ids = %ids.join(","),
            sessions_closed = done.sessions_closed,
            "ended streams left ACTIVE by an unclean stop of this node (ended_at = last seen)"
        );
    } else if done.sessions_closed > 0 {
        info!(
            node,
            sessions_closed = done.sessions_closed,
            "closed viewer sessions left open by an unclean stop"
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = node_id(dir.path()).unwrap();
        assert!(Uuid::parse_str(&first).is_ok(), "{first}");
        assert_eq!(node_id(dir.path()).unwrap(), first);
        assert!(!dir.path().join("node_id.tmp").exists());
        std::fs::write(dir.path().join(NODE_ID_FILE), "edge-01.example\n").unwrap();
        assert_eq!(node_id(dir.path()).unwrap(), "edge-01.example");
        for bad in ["", "   \n", "has space", "ü", &"x".repeat(65)] {
            std::fs::write(dir.path().join(NODE_ID_FILE), bad).unwrap();
            let e = node_id(dir.path()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
            assert!(e.to_string().contains("node_id"), "{e}");
        }
    }
}
