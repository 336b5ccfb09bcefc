//! Folders no other account can plant anything in. cargo reads `.cargo/config.toml` from
//! every ancestor of the folder it builds in (a linker, `[env]`, a rustc wrapper), so a
//! folder cargo, rustc or the linker works in is safe only when every ancestor is owned by
//! this account or root and writable by neither group nor others — a sticky `/tmp` is
//! not: anyone may create `/tmp/.cargo`.
//!
//! [`create`] makes a folder (mode 0700) and verifies it with `lstat`: ours, not a
//! symlink, no group or other write. An existing folder that fails is refused, never
//! "fixed" with chmod: the error names it and the fix.
//!
//! Leaf module: file-system checks only; which folders to use is `workdir`'s decision.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Why a folder cannot be used, in words for the learner: the folder, what is wrong, the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn my_uid() -> u32 {
    unsafe { libc::geteuid() }
}

/// Group or other may write.
const SHARED_WRITE: u32 = 0o022;

/// The first of `path`'s existing ancestors (`path` included) another account could
/// write in, as a refusal; checked both as written and with symlinks resolved.
pub fn check_ancestors(path: &Path) -> Result<(), Refusal> {
    check_chain(path, path)
}

/// Checks `checked`'s existing ancestors (itself included); a refusal names `path`.
fn check_chain(path: &Path, checked: &Path) -> Result<(), Refusal> {
    let written = std::path::absolute(checked).unwrap_or_else(|_| checked.to_path_buf());
    let mut chains = vec![written.clone()];
    if let Ok(resolved) = nearest_existing(&written).canonicalize() {
        chains.push(resolved);
    }
    for chain in chains {
        for folder in prefixes(&chain) {
            let Ok(meta) = std::fs::metadata(&folder) else {
                continue;
            };
            let owner_ok = meta.uid() == my_uid() || meta.uid() == 0;
            if !owner_ok || meta.mode() & SHARED_WRITE != 0 {
                let why = if owner_ok {
                    format!(
                        "{} is writable by other accounts (mode {:o})",
                        folder.display(),
                        meta.mode() & 0o7777
                    )
                } else {
                    format!("{} belongs to uid {}", folder.display(), meta.uid())
                };
                return Err(Refusal(format!(
                    "{} is not safe to build in: {why}, so another account could plant a cargo configuration there that runs in your cells",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Creates `path` and any missing parents with mode 0700, after checking the ancestors,
/// and verifies the result. An existing folder is verified, never changed.
pub fn create(path: &Path) -> Result<(), Refusal> {
    // The folder itself is judged by `verify`, whose message names the fix.
    check_chain(path, path.parent().unwrap_or(path))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Refusal(format!("cannot create {}: {e}", path.display())))?;
    verify(path)?;
    // A parent swapped for a symlink while we created the folder shows here.
    check_ancestors(path)
}

/// `path` is a folder of ours that group and others cannot write. A symbolic link counts
/// as its target when that is such a folder with safe ancestors: only this account or root
/// can have made a link in a folder that passed the ancestor check (`~/.cache/rustmeter`
/// pointing to a bigger disk); one in a folder others can write in is refused before this.
pub fn verify(path: &Path) -> Result<(), Refusal> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Refusal(format!("cannot read {}: {e}", path.display())))?;
    let fix = "remove it (or set the folder to one of yours) and start the kernel again";
    if meta.file_type().is_symlink() {
        let target = path.canonicalize().map_err(|e| {
            Refusal(format!(
                "{} is a symbolic link that leads nowhere ({e}): {fix}",
                path.display()
            ))
        })?;
        return verify(&target)
            .and_then(|()| check_ancestors(&target))
            .map_err(|why| {
                Refusal(format!(
                    "{} is a symbolic link to a folder that is not safe: {why}",
                    path.display()
                ))
            });
    }
    if !meta.is_dir() {
        return Err(Refusal(format!(
            "{} is not a folder: {fix}",
            path.display()
        )));
    }
    if meta.uid() != my_uid() {
        return Err(Refusal(format!(
            "{} belongs to uid {}, not to you (uid {}): {fix}",
            path.display(),
            meta.uid(),
            my_uid()
        )));
    }
    if meta.mode() & SHARED_WRITE != 0 {
        return Err(Refusal(format!(
            "{} is writable by other accounts (mode {:o}): {fix}, or make it private yourself (chmod go-w)",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Opens `path` for writing (appending, or from empty), created 0600 when missing, and
/// never through a symbolic link: a link planted in its place is an error, not a write
/// elsewhere. For files in the folders `create` made, which no other account can enter;
/// this keeps a mistake in that promise from becoming a write through a link.
pub fn open_for_writing(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Creates `path`, which must not exist yet (`O_EXCL`: not even as a link), with the mode
/// `fs::write` gives (0644 less the umask: cells and cargo of the same account read these).
pub fn create_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// `path`'s longest prefix that exists.
fn nearest_existing(path: &Path) -> PathBuf {
    let mut here = path.to_path_buf();
    while !here.exists() {
        if !here.pop() {
            break;
        }
    }
    here
}

/// `/`, `/a`, `/a/b`, … up to `path` (the caller skips those that do not exist).
fn prefixes(path: &Path) -> Vec<PathBuf> {
    let mut prefixes = Vec::new();
    let mut here = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                here.pop();
            }
            Component::CurDir => {}
            other => here.push(other),
        }
        prefixes.push(here.clone());
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rm-private-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_world_writable_ancestor_is_refused_and_named() {
        let open = scratch("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let inside = open.join("a").join("b");
        let refusal = create(&inside).unwrap_err();
        if check_ancestors(&std::env::temp_dir()).is_ok() {
            // (Under a shared temp folder the refusal names that folder instead.)
            assert!(
                refusal
                    .0
                    .contains(&format!("{} is writable", open.display())),
                "{refusal}"
            );
        }
        assert!(
            refusal.0.contains("writable by other accounts"),
            "{refusal}"
        );
        assert!(!inside.exists());
        std::fs::remove_dir_all(open).unwrap();
    }

    #[test]
    fn files_are_never_written_through_a_link() {
        let base = scratch("files");
        std::fs::create_dir_all(&base).unwrap();
        let target = base.join("elsewhere");
        std::fs::write(&target, "theirs").unwrap();
        let link = base.join("log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_for_writing(&link, true).is_err());
        assert!(open_for_writing(&link, false).is_err());
        assert!(create_new_file(&link).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "theirs");
        let fresh = base.join("fresh");
        use std::io::Write;
        open_for_writing(&fresh, true)
            .unwrap()
            .write_all(b"a")
            .unwrap();
        open_for_writing(&fresh, true)
            .unwrap()
            .write_all(b"b")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "ab");
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
        assert!(
            create_new_file(&fresh).is_err(),
            "O_EXCL: an existing file is not reused"
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn created_folders_are_private_and_existing_ones_are_not_changed() {
        if check_ancestors(&std::env::temp_dir()).is_err() {
            return; // this machine's temp folder is shared: nothing under it can pass
        }
        let base = scratch("made");
        create(&base.join("x").join("y")).unwrap();
        let mode = std::fs::metadata(base.join("x/y")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let shared = base.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refusal = create(&shared).unwrap_err();
        assert!(refusal.0.contains("chmod go-w"), "{refusal}");
        assert_eq!(
            std::fs::metadata(&shared).unwrap().mode() & 0o777,
            0o777,
            "never fixed silently"
        );
        let link = base.join("link");
        std::os::unix::fs::symlink(base.join("x"), &link).unwrap();
        create(&link).expect("a link of ours to a private folder of ours is that folder");
        let open_link = base.join("open-link");
        std::os::unix::fs::symlink(&shared, &open_link).unwrap();
        let refusal = create(&open_link).unwrap_err();
        assert!(
            refusal
                .0
                .contains("symbolic link to a folder that is not safe"),
            "{refusal}"
        );
        std::fs::remove_dir_all(base).unwrap();
    }
}
