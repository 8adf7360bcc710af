//! Backup, restore and the schema check, on the database file itself.
//!
//! A backup is `VACUUM INTO` on a read-only connection: one read
//! transaction, so the copy is consistent (every transaction committed
//! before it began, none after) while a server keeps writing; in WAL mode
//! it does not block the writer. The copy is written to a private (0600)
//! temporary file next to the destination and renamed into place once
//! complete, so a destination file is either absent or a whole backup.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tessera_store::{StoreError, StoreResult};

use crate::files::FILE_MODE;
use crate::schema::{self, SCHEMA_VERSION};

/// How a database file's schema compares with this build's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaCheck {
    /// `None` for a file without Tessera's tables.
    pub stored: Option<i64>,
    /// [`SCHEMA_VERSION`].
    pub current: i64,
}

fn failed(what: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Unavailable(format!("{what}: {e}"))
}

fn open_read_only(db: &Path) -> StoreResult<Connection> {
    if !db.is_file() {
        return Err(StoreError::Unavailable(format!(
            "no store at {}",
            db.display()
        )));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed(format!("cannot open {}", db.display())))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(failed(format!("cannot open {}", db.display())))?;
    Ok(conn)
}

/// The schema version recorded in `db`, which must exist, next to this
/// build's. Changes nothing.
pub fn check_schema(db: &Path) -> StoreResult<SchemaCheck> {
    let conn = open_read_only(db)?;
    let stored = schema::stored_version(&conn).map_err(failed(format!(
        "cannot read the schema of {}",
        db.display()
    )))?;
    Ok(SchemaCheck {
        stored,
        current: SCHEMA_VERSION,
    })
}

/// `<path>.tmp-<pid>`: where a file is written before it is renamed.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    PathBuf::from(name)
}

/// Creates `path` empty and 0600; it must not exist.
fn create_private(path: &Path) -> StoreResult<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", path.display())))
}

/// Renames `from` to `to` and syncs the file; removes `from` on failure.
fn finish(from: &Path, to: &Path) -> StoreResult<()> {
    let done = std::fs::File::open(from)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(from, to));
    if let Err(e) = done {
        let _ = std::fs::remove_file(from);
        return Err(StoreError::Unavailable(format!(
            "cannot write {}: {e}",
            to.display()
        )));
    }
    if let Some(dir) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Whether `dest` names the store `db` itself or one of its companion
/// files (`-wal`, `-shm`, `-journal`, `.lock`), through whatever path.
fn is_part_of_store(db: &Path, dest: &Path) -> bool {
    // The destination's folder resolved, and its own name: `dest` itself
    // may not exist yet.
    let resolve = |p: &Path| -> Option<PathBuf> {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(std::fs::canonicalize(dir).ok()?.join(p.file_name()?))
    };
    let Some(dest) = resolve(dest) else {
        return false;
    };
    std::iter::once(db.to_owned())
        .chain(crate::files::companions(db))
        .filter_map(|p| resolve(&p))
        .any(|p| p == dest)
}

/// Writes a consistent copy of `db` to `dest` (created 0600). Refuses an
/// existing `dest` unless `overwrite`, and whatever `overwrite` says, a
/// `dest` that is the store itself or one of its files, or that is not a
/// regular file (a directory, a device, a link).
pub fn backup(db: &Path, dest: &Path, overwrite: bool) -> StoreResult<()> {
    if is_part_of_store(db, dest) {
        return Err(StoreError::Unavailable(format!(
            "{} is the store itself (or one of its files): back it up to another file",
            dest.display()
        )));
    }
    match std::fs::symlink_metadata(dest) {
        Ok(_) if !overwrite => {
            return Err(StoreError::Unavailable(format!(
                "{} exists; pass --force to overwrite it",
                dest.display()
            )))
        }
        Ok(meta) if meta.is_dir() => {
            return Err(StoreError::Unavailable(format!(
                "{} is a directory",
                dest.display()
            )))
        }
        Ok(meta) if !meta.is_file() => {
            return Err(StoreError::Unavailable(format!(
                "{} is not a regular file (a link, a device or a socket): it is not overwritten",
                dest.display()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StoreError::Unavailable(format!(
                "cannot use {}: {e}",
                dest.display()
            )))
        }
    }
    let conn = open_read_only(db)?;
    schema::refuse_newer(schema::stored_version(&conn).map_err(failed(format!(
        "cannot read the schema of {}",
        db.display()
    )))?)?;
    let tmp = temporary(dest);
    create_private(&tmp)?;
    let target = tmp
        .to_str()
        .ok_or_else(|| StoreError::Unavailable(format!("{} is not valid UTF-8", dest.display())))?;
    if let Err(e) = conn.execute("VACUUM INTO ?1", [target]) {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreError::Unavailable(format!(
            "cannot back up {}: {e}",
            db.display()
        )));
    }
    finish(&tmp, dest)
}

/// Copies the backup `src` to `db`, which must not exist, after checking
/// that it is an intact database of a schema this build can open.
pub fn restore(src: &Path, db: &Path) -> StoreResult<()> {
    let conn = open_read_only(src)?;
    let ok: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(failed(format!("{} is not a Tessera backup", src.display())))?;
    if ok != "ok" {
        return Err(StoreError::Unavailable(format!(
            "{} is damaged: {ok}",
            src.display()
        )));
    }
    let stored = schema::stored_version(&conn)
        .map_err(failed(format!("{} is not a Tessera backup", src.display())))?;
    if stored.is_none() {
        return Err(StoreError::Unavailable(format!(
            "{} is not a Tessera backup (it has no Tessera tables)",
            src.display()
        )));
    }
    schema::refuse_newer(stored)?;
    // Copied as it was checked: through SQLite, in one read transaction,
    // so that what a write-ahead log beside `src` holds is copied too (a
    // byte copy of the main file alone would drop it).
    let tmp = temporary(db);
    create_private(&tmp)?;
    let target = tmp
        .to_str()
        .ok_or_else(|| StoreError::Unavailable(format!("{} is not valid UTF-8", db.display())))?;
    if let Err(e) = conn.execute("VACUUM INTO ?1", [target]) {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreError::Unavailable(format!(
            "cannot copy {} to {}: {e}",
            src.display(),
            tmp.display()
        )));
    }
    drop(conn);
    finish(&tmp, db)
}
