//! The generated OAuth key: sign-in works without any OAuth setting, so when
//! OAUTH_ENCRYPTION_KEY is unset the key is made at first start and kept in a file beside the
//! database (`<OAUTH_DB_PATH>.key`), created 0600 in one step and reused afterwards.
//!
//! The key is never logged or printed; the log says only that a key was generated or read, and
//! where. Losing the file makes the stored Coda tokens unreadable (users sign in again).

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::identity::Secret;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the OAuth key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the OAuth key file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the OAuth key file {path} is readable by group or others (mode {mode:o}); run `chmod 600` on it")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the OAuth key file {path} does not hold a key: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Where the generated key lives for a database path: the same path plus `.key`.
pub fn path_for(db_path: &Path) -> PathBuf {
    let mut name = OsString::from(db_path.as_os_str());
    name.push(".key");
    PathBuf::from(name)
}

/// The key kept beside `db_path`, generated first if there is none yet.
pub fn load_or_create(db_path: &Path) -> Result<Secret, KeyFileError> {
    let path = path_for(db_path);
    match read(&path) {
        Err(KeyFileError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        found => {
            if found.is_ok() {
                tracing::info!(path = %path.display(), "OAuth encryption key read from its file");
            }
            return found;
        }
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = Secret::new(hex::encode(bytes));
    match create(&path, &key) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "OAuth encryption key generated (OAUTH_ENCRYPTION_KEY unset); keep this file private and backed up with the database");
            Ok(key)
        }
        // Another gateway on the same database made one first: use theirs.
        Err(KeyFileError::Create { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
            read(&path)
        }
        Err(e) => Err(e),
    }
}

fn read(path: &Path) -> Result<Secret, KeyFileError> {
    let read_error = |source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(read_error)?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(read_error)?;
    let key = Secret::new(text.trim());
    crate::oauth::crypto::parse_key(key.expose()).map_err(|reason| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(key)
}

/// Writes the key to a private temporary file, then links it into place: the final name never
/// exists half-written or with a wider mode, and an existing file is never replaced.
fn create(path: &Path, key: &Secret) -> Result<(), KeyFileError> {
    let create_error = |source| KeyFileError::Create {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(key.expose().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    written.map_err(create_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gw-keyfile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn generated_once_private_and_reused() {
        let dir = scratch("reuse");
        let db = dir.join("oauth.sqlite3");
        let first = load_or_create(&db).unwrap();
        let file = dir.join("oauth.sqlite3.key");
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert!(crate::oauth::crypto::parse_key(first.expose()).is_ok());
        let again = load_or_create(&db).unwrap();
        assert_eq!(first, again, "the second start reuses the key");
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file stays behind");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn an_exposed_or_broken_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("refuse");
        let db = dir.join("db");
        load_or_create(&db).unwrap();
        let file = path_for(&db);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&db).unwrap_err();
        assert!(matches!(err, KeyFileError::Exposed { .. }), "{err}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&file, "not a key").unwrap();
        let err = load_or_create(&db).unwrap_err().to_string();
        assert!(err.contains("does not hold a key"), "{err}");
        assert!(!err.contains("not a key\""), "{err}");
        let _ = fs::remove_dir_all(dir);
    }
}
