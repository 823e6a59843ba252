//! Directories and files other users may not read: private keys, configurations that hold
//! secrets, and patient data (the inbox, its exports). Directories are created 0700 and
//! secret files 0600 on Unix; elsewhere the platform's defaults apply. Errors are plain
//! `io::Error`s: each caller names the path in its own error type.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates `dir` and any missing parents, each new one 0700. An existing directory is kept
/// as it is.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to `path`, replacing any earlier content, and syncs it to disk. A `secret`
/// file is 0600, even one that existed before with a wider mode; any other is 0644 when new.
pub(crate) fn write_file(path: &Path, bytes: &[u8], secret: bool) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path)?;
    #[cfg(unix)]
    if secret {
        // An existing file keeps its old mode on open; tighten it explicitly.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates a new file only this user can read and write. An existing file is never touched:
/// opening one fails with [`io::ErrorKind::AlreadyExists`].
pub fn create_new_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_and_new_directories_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);

        let key = nested.join("key.pem");
        std::fs::write(&key, "old").unwrap();
        write_file(&key, b"new", true).unwrap();
        assert_eq!(mode(&key), 0o600, "an existing secret file is tightened");
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
    }

    #[test]
    fn a_new_private_file_never_replaces_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.jsonl");
        create_new_private_file(&path).unwrap();
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        let again = create_new_private_file(&path).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    }
}
