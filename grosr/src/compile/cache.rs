//! The compile cache on disk: CUBINs that only this user could have written.
//!
//! Each entry is `<key>.entry`: [`MAGIC`], an HMAC-SHA256 tag, then the CUBIN. The tag covers
//! the entry's name and the CUBIN under a random per-user key, the file [`KEY_FILE`] in the same
//! folder, so a CUBIN written by anyone without the key, or moved under another name, is refused
//! (and compiled anew, overwriting it). The key travels with the folder: a cache filled on one
//! machine verifies on another for the same user id. On unix the folder must be the user's own
//! and writable by no one else (a new one is made `0700`), and the key a regular `0600` file of
//! the user's; a key that is not is replaced, which invalidates the entries made with it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::hmac::{hmac_sha256, tags_equal};
use crate::error::{Error, Result};

/// The first bytes of every entry (the format's version is in it).
const MAGIC: &[u8; 8] = b"GROSRC01";
/// The key's file name inside the cache folder.
pub(crate) const KEY_FILE: &str = "hmac.key";
/// Bytes of key.
const KEY_BYTES: usize = 32;
/// Entries larger than this are not read (a CUBIN is a few MiB).
const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A CUBIN whose tag verified.
    Hit(Vec<u8>),
    /// No entry (or none readable).
    Miss,
    /// An entry whose tag does not verify: the reason, naming the file.
    Refused(String),
}

/// An open cache folder and its key.
pub(crate) struct Cache {
    dir: PathBuf,
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("dir", &self.dir).finish()
    }
}

impl Cache {
    /// Opens `dir` (creating it), checking it and its key; makes a key if there is none or it
    /// fails its checks. An error says why the folder cannot be used.
    pub(crate) fn open(dir: &Path) -> Result<Cache> {
        secure::check_dir(dir)?;
        let key = load_or_make_key(dir)?;
        Ok(Cache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    fn entry_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.entry"))
    }

    fn tag(&self, name: &str, cubin: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.key, &[MAGIC, name.as_bytes(), &[0], cubin])
    }

    /// The CUBIN stored under `name` (a hex digest), if its tag verifies.
    pub(crate) fn load(&self, name: &str) -> Lookup {
        let path = self.entry_path(name);
        let refused = |why: &str| Lookup::Refused(format!("{}: {why}", path.display()));
        // Checked before opening: opening a FIFO would block.
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() && m.len() <= MAX_ENTRY_BYTES => {}
            Ok(_) => return refused("not a regular file of a sane size"),
            Err(_) => return Lookup::Miss,
        }
        let mut bytes = Vec::new();
        let read = File::open(&path).and_then(|f| f.take(MAX_ENTRY_BYTES).read_to_end(&mut bytes));
        if read.is_err() {
            return Lookup::Miss;
        }
        let head = MAGIC.len() + 32;
        if bytes.len() <= head || &bytes[..MAGIC.len()] != MAGIC {
            return refused("not a grosr cache entry");
        }
        let Ok(stored) = <[u8; 32]>::try_from(&bytes[MAGIC.len()..head]) else {
            return refused("not a grosr cache entry");
        };
        if !tags_equal(&stored, &self.tag(name, &bytes[head..])) {
            return refused(
                "its keyed digest does not match (written by someone else, or with another key)",
            );
        }
        bytes.drain(..head);
        Lookup::Hit(bytes)
    }

    /// Stores `cubin` under `name`, atomically (a reader sees the old entry or the new one).
    pub(crate) fn store(&self, name: &str, cubin: &[u8]) -> Result<()> {
        let path = self.entry_path(name);
        let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + cubin.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.tag(name, cubin));
        bytes.extend_from_slice(cubin);
        let tmp = write_temp(&path, &bytes)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(format!("renaming {} into place", path.display()), e)
        })
    }
}

/// Writes `bytes` to a new user-only file beside `path` (a name no other writer in this process
/// or another uses) and returns its path.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("writing {}", tmp.display()), e)
    })?;
    Ok(tmp)
}

/// The folder's key: the one there if it passes its checks, else a new one.
fn load_or_make_key(dir: &Path) -> Result<[u8; KEY_BYTES]> {
    let path = dir.join(KEY_FILE);
    match secure::read_key(&path) {
        Ok(Some(key)) => return Ok(key),
        Ok(None) => {}
        Err(why) => {
            super::warn_once(format!(
                "grosr: replacing the compile cache key {} ({why}); entries made with it will be compiled again",
                path.display()
            ));
            std::fs::remove_file(&path)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        }
    }
    let mut key = [0u8; KEY_BYTES];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| Error::io("reading /dev/urandom for the compile cache key", e))?;
    let tmp = write_temp(&path, &key)?;
    // A hard link creates the key only if there is none: two processes making one at once
    // agree on the first (a rename would let the second replace the key the first used).
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match secure::read_key(&path) {
            Ok(Some(key)) => Ok(key),
            Ok(None) => Err(Error::io(
                format!("reading {}", path.display()),
                std::io::ErrorKind::NotFound.into(),
            )),
            Err(why) => Err(Error::io(
                format!("checking {}", path.display()),
                std::io::Error::other(why),
            )),
        },
        Err(e) => Err(Error::io(format!("creating {}", path.display()), e)),
    }
}

#[cfg(unix)]
mod secure {
    //! Ownership and permission checks of the folder and the key.

    use std::fs::File;
    use std::io::Read;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    use std::path::Path;

    use super::KEY_BYTES;
    use crate::error::{Error, Result};

    unsafe extern "C" {
        /// POSIX; cannot fail.
        safe fn geteuid() -> u32;
    }

    /// The user id files made by this process get.
    pub(super) fn user() -> u32 {
        geteuid()
    }

    /// Creates `dir` user-only if missing; refuses a folder that is not the user's or that
    /// others may write.
    pub(super) fn check_dir(dir: &Path) -> Result<()> {
        let refuse = |why: String| {
            Error::io(
                format!("using the compile cache folder {}", dir.display()),
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, why),
            )
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let m = std::fs::metadata(dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        if !m.is_dir() {
            return Err(refuse("not a folder".into()));
        }
        if m.uid() != user() {
            return Err(refuse(format!(
                "owned by user id {}, not by this user ({})",
                m.uid(),
                user()
            )));
        }
        if m.permissions().mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "others may write it (mode {:o}): `chmod go-w` it",
                m.permissions().mode() & 0o7777
            )));
        }
        Ok(())
    }

    /// The key at `path`: `Ok(None)` if there is none, `Err(why)` if it fails a check (not a
    /// regular file, not the user's, readable or writable by others, not 32 bytes).
    pub(super) fn read_key(path: &Path) -> std::result::Result<Option<[u8; KEY_BYTES]>, String> {
        let link = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if !link.file_type().is_file() {
            return Err("not a regular file".into());
        }
        let mut file = File::open(path).map_err(|e| e.to_string())?;
        let m = file.metadata().map_err(|e| e.to_string())?;
        // The file opened is the one checked, not one swapped in between.
        if (m.dev(), m.ino()) != (link.dev(), link.ino()) {
            return Err("replaced while being opened".into());
        }
        if m.uid() != user() {
            return Err(format!("owned by user id {}", m.uid()));
        }
        if m.mode() & 0o077 != 0 {
            return Err(format!("mode {:o}, not 600", m.mode() & 0o7777));
        }
        if m.len() != KEY_BYTES as u64 {
            return Err(format!("{} bytes, not {KEY_BYTES}", m.len()));
        }
        let mut key = [0u8; KEY_BYTES];
        file.read_exact(&mut key).map_err(|e| e.to_string())?;
        Ok(Some(key))
    }
}

#[cfg(not(unix))]
mod secure {
    //! Without unix permissions a folder cannot be shown to be the user's alone: no cache.

    use std::path::Path;

    use super::KEY_BYTES;
    use crate::error::{Error, Result};

    pub(super) fn check_dir(dir: &Path) -> Result<()> {
        Err(Error::Unsupported(format!(
            "the compile cache {} (it needs unix file permissions)",
            dir.display()
        )))
    }

    pub(super) fn read_key(_: &Path) -> std::result::Result<Option<[u8; KEY_BYTES]>, String> {
        Ok(None)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A fresh folder under the system's temp folder, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("grosr-cache-test-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700));
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const NAME: &str = "0123abcd";

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_stored_entry_loads_back_and_the_folder_and_key_are_user_only() {
        let t = TempDir::new("roundtrip");
        let dir = t.0.join("nested/grosr");
        let cache = Cache::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&t.0), 0o700, "made parents are user-only too");
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(cache.load(NAME), Lookup::Miss);
        cache.store(NAME, b"\x7fELF cubin").unwrap();
        assert_eq!(mode(&dir.join(format!("{NAME}.entry"))), 0o600);
        assert_eq!(cache.load(NAME), Lookup::Hit(b"\x7fELF cubin".to_vec()));
        // A second open (another process) finds the same key and the entry.
        let again = Cache::open(&dir).unwrap();
        assert_eq!(again.key, cache.key);
        assert_eq!(again.load(NAME), Lookup::Hit(b"\x7fELF cubin".to_vec()));
        // Only the entry and the key are left: no temporary files.
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec![format!("{NAME}.entry"), KEY_FILE.to_string()]);
    }

    #[test]
    fn a_tampered_entry_is_refused_and_a_new_store_replaces_it() {
        let t = TempDir::new("tampered");
        let cache = Cache::open(&t.0).unwrap();
        cache.store(NAME, b"\x7fELF good code").unwrap();
        let path = t.0.join(format!("{NAME}.entry"));
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(cache.load(NAME), Lookup::Refused(_)));
        // A plain CUBIN dropped in as an entry (no tag) is refused too.
        std::fs::write(&path, b"\x7fELF injected code, no header").unwrap();
        assert!(matches!(cache.load(NAME), Lookup::Refused(_)));
        // A valid entry of another name, copied under this one, is refused: the name is signed.
        cache.store("other", b"\x7fELF other code").unwrap();
        std::fs::copy(t.0.join("other.entry"), &path).unwrap();
        assert!(matches!(cache.load(NAME), Lookup::Refused(_)));
        // Compiling anew overwrites the entry, which then loads.
        cache.store(NAME, b"\x7fELF good code").unwrap();
        assert_eq!(cache.load(NAME), Lookup::Hit(b"\x7fELF good code".to_vec()));
    }

    #[test]
    fn an_entry_that_is_a_fifo_or_a_link_is_refused_without_opening_it() {
        let t = TempDir::new("fifo");
        let cache = Cache::open(&t.0).unwrap();
        let path = t.0.join(format!("{NAME}.entry"));
        // A FIFO with no writer would block an open for good.
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(matches!(cache.load(NAME), Lookup::Refused(_)));
            std::fs::remove_file(&path).unwrap();
        }
        cache.store("other", b"\x7fELF code").unwrap();
        std::os::unix::fs::symlink(t.0.join("other.entry"), &path).unwrap();
        assert!(matches!(cache.load(NAME), Lookup::Refused(_)));
        // Storing replaces the link itself, not what it points to.
        cache.store(NAME, b"\x7fELF mine").unwrap();
        assert_eq!(cache.load(NAME), Lookup::Hit(b"\x7fELF mine".to_vec()));
        assert_eq!(cache.load("other"), Lookup::Hit(b"\x7fELF code".to_vec()));
    }

    #[test]
    fn an_entry_made_with_another_key_is_refused() {
        let t = TempDir::new("wrong-key");
        let cache = Cache::open(&t.0).unwrap();
        cache.store(NAME, b"\x7fELF code").unwrap();
        // Another valid key (user-only, 32 bytes) in place of the one the entry was made with.
        let key = t.0.join(KEY_FILE);
        std::fs::write(&key, [0x55u8; KEY_BYTES]).unwrap();
        assert_eq!(mode(&key), 0o600, "rewriting keeps the mode");
        let other = Cache::open(&t.0).unwrap();
        assert_eq!(other.key, [0x55u8; KEY_BYTES]);
        assert!(matches!(other.load(NAME), Lookup::Refused(_)));
    }

    #[test]
    fn a_key_file_others_can_read_or_that_is_not_a_regular_file_is_replaced() {
        let t = TempDir::new("bad-key");
        let cache = Cache::open(&t.0).unwrap();
        cache.store(NAME, b"\x7fELF code").unwrap();
        let key = t.0.join(KEY_FILE);
        // Readable by others: the key may be known, so it is replaced and the entries with it.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fresh = Cache::open(&t.0).unwrap();
        assert_ne!(fresh.key, cache.key);
        assert_eq!(mode(&key), 0o600);
        assert!(matches!(fresh.load(NAME), Lookup::Refused(_)));
        // A link to a file elsewhere (the attacker's key) is replaced by a regular file.
        let elsewhere = t.0.join("planted");
        std::fs::write(&elsewhere, [0x11u8; KEY_BYTES]).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::remove_file(&key).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &key).unwrap();
        let relinked = Cache::open(&t.0).unwrap();
        assert_ne!(relinked.key, [0x11u8; KEY_BYTES]);
        assert!(
            std::fs::symlink_metadata(&key)
                .unwrap()
                .file_type()
                .is_file()
        );
        assert_eq!(std::fs::read(&elsewhere).unwrap(), [0x11u8; KEY_BYTES]);
        // A key of the wrong length is replaced too.
        std::fs::write(&key, [1u8; 5]).unwrap();
        let resized = Cache::open(&t.0).unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().len(), KEY_BYTES as u64);
        assert_ne!(resized.key, relinked.key);
    }

    #[test]
    fn a_folder_others_may_write_or_another_user_owns_is_not_used() {
        let t = TempDir::new("folder");
        Cache::open(&t.0).unwrap();
        for bad in [0o777, 0o720, 0o702] {
            std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(bad)).unwrap();
            let e = Cache::open(&t.0).unwrap_err();
            assert!(
                e.to_string().contains("others may write it"),
                "{bad:o}: {e}"
            );
        }
        // Readable by others is fine (the entries are signed, the key is user-only).
        std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        Cache::open(&t.0).unwrap();
        // A folder of another user: root can make one; anyone else has one in `/`.
        let foreign = if secure::user() == 0 {
            std::os::unix::fs::chown(&t.0, Some(1), None).unwrap();
            t.0.clone()
        } else {
            PathBuf::from("/")
        };
        let e = Cache::open(&foreign).unwrap_err();
        assert!(e.to_string().contains("not by this user"), "{e}");
        // A file where the folder should be.
        let t = TempDir::new("file");
        std::fs::write(&t.0, b"").unwrap();
        assert!(Cache::open(&t.0).is_err());
        let _ = std::fs::remove_file(&t.0);
    }
}
