//! The store's files are private to the user that runs it: the database,
//! its `-wal`, `-shm` and `-journal` companions and `<db>.lock` are
//! created 0600 whatever the umask, and any that already exist with group
//! or other permission bits are narrowed to 0600 before SQLite opens them.
//!
//! SQLite itself creates a new database with 0644 less the umask, and gives
//! the `-wal`, `-shm` and `-journal` files it creates later the permissions
//! of the database file (it `fchmod`s them to match). So creating the
//! database first with 0600 is what keeps every later file private too.

use std::fs::{OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tessera_store::{StoreError, StoreResult};

/// The only mode the store's files have.
pub(crate) const FILE_MODE: u32 = 0o600;

/// The files SQLite keeps next to the database, and the lock file.
pub(crate) fn companions(db: &Path) -> [PathBuf; 4] {
    ["-wal", "-shm", "-journal", ".lock"].map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Creates the database file 0600 if it does not exist yet and narrows
/// every existing file of the store to 0600. Run before SQLite opens `db`.
pub(crate) fn make_private(db: &Path) -> StoreResult<()> {
    let refuse = |path: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!(
            "cannot make {} private (mode 0600): {e}",
            path.display()
        ))
    };
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(db)
        .map_err(|e| refuse(db, e))?;
    narrow(db).map_err(|e| refuse(db, e))?;
    for path in companions(db) {
        match narrow(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            other => other.map_err(|e| refuse(&path, e))?,
        }
    }
    Ok(())
}

/// Sets `path` to 0600 unless it is already.
fn narrow(path: &Path) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != FILE_MODE {
        std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

/// Opens (creating it 0600 if needed) a file of the store for writing.
pub(crate) fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(path)?;
    narrow(path)?;
    Ok(file)
}

/// Why SQLite could not open `db`, naming the file and what it needs.
pub(crate) fn cannot_open(db: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!(
        "cannot open {}: {e} (the user running tessera needs read and write \
         permission on the file and on its directory)",
        db.display()
    ))
}
