//! Free space under the SQLite database (`statvfs(3)`, POSIX).
//!
//! SQLite in WAL mode can commit small writes into space its WAL file
//! already holds, so on a full disk some writes succeed and others fail at
//! random (`SQLITE_FULL`, or `SQLITE_IOERR` at a checkpoint). Checking the
//! free space first makes a full disk a clear, consistent "cannot write":
//! every write and the readiness probe refuse while less than
//! [`MIN_FREE_BYTES`](super::MIN_FREE_BYTES) is free.

use std::io;
use std::path::Path;

use super::MIN_FREE_BYTES;
use crate::CoreError;

/// Bytes an unprivileged process may still write on the filesystem holding
/// `path` (`f_bavail × f_frsize`).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `Ok` unless the filesystem of `dir` is known to have less than
/// [`MIN_FREE_BYTES`] free; then a database error that
/// [`is_unavailable`](super::is_unavailable) recognises (an I/O error of kind
/// `StorageFull`). When the space cannot be read the write is let through.
pub(crate) fn check_space(dir: &Path) -> Result<(), CoreError> {
    match free_bytes(dir) {
        Ok(free) if free < MIN_FREE_BYTES => Err(CoreError::Database {
            context: "disk full",
            source: sqlx::Error::Io(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "{free} bytes free on the filesystem of {} (the database needs at least \
                     {MIN_FREE_BYTES})",
                    dir.display()
                ),
            )),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_of_a_real_directory_is_read() {
        let dir = std::env::temp_dir();
        assert!(free_bytes(&dir).is_ok());
        assert!(free_bytes(Path::new("/no/such/dir/at/all")).is_err());
        // Unreadable space never blocks a write.
        assert!(check_space(Path::new("/no/such/dir/at/all")).is_ok());
    }
}
