//! One cache tier on disk: entries, their manifests, atomic publishing, verification,
//! and the size bound. Knows nothing of rustc's command line (see `key`) and never
//! runs a compiler; every failure is an `Err` the wrapper turns into a miss.
//!
//! Layout of a tier `T`:
//! ```text
//! T/entries/<key>/manifest.json   what the entry holds (see [`Manifest`])
//! T/entries/<key>/files/<name>    rustc's outputs (rlib, rmeta, so, .d)
//! T/entries/<key>/atime           touched on every hit (least-recently-used order)
//! T/tmp/<key>-<pid>-<nanos>/      an entry being written; renamed into entries/
//! T/trash/                        entries being evicted; removed after the rename
//! T/hits.log                      the hit record (see `record`)
//! ```

use super::digest::sha256_hex;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// What an entry holds and where it was compiled, so a hit can rewrite paths.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub crate_name: String,
    /// The `--out-dir` the files were compiled into.
    pub out_dir: String,
    /// `OUT_DIR` of the compile, when the crate had a build script.
    pub build_out_dir: Option<String>,
    pub cargo_home: String,
    pub shims: String,
    pub files: Vec<StoredFile>,
    /// rustc's stderr (JSON diagnostics and artifact notifications), replayed on a hit.
    pub stderr: String,
    /// `# env-dep:` lines of the dep-info: variables the crate read while compiling.
    pub env_deps: Vec<String>,
    /// The crate's enabled cargo features (`--cfg feature="…"`), for reports only (the
    /// key already covers them); empty in entries written before it was recorded.
    #[serde(default)]
    pub features: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Tier {
    pub root: PathBuf,
    /// Shared tiers are only read, and only trusted when nobody else can write them.
    pub shared: bool,
}

/// An entry that passed verification: its manifest and the files' bytes.
pub struct Loaded {
    pub manifest: Manifest,
    pub files: Vec<(String, Vec<u8>)>,
}

pub enum Lookup {
    Hit(Box<Loaded>),
    Miss,
    /// Present but unusable (bad manifest, size or hash, unreadable, untrusted).
    Corrupt(String),
}

impl Tier {
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(key)
    }

    pub fn lookup(&self, key: &str) -> Lookup {
        let dir = self.entry_dir(key);
        if !dir.is_dir() {
            return Lookup::Miss;
        }
        match self.load(&dir) {
            Ok(loaded) => Lookup::Hit(Box::new(loaded)),
            Err(e) => {
                if !self.shared {
                    self.remove_entry(&dir);
                }
                Lookup::Corrupt(e)
            }
        }
    }

    fn load(&self, dir: &Path) -> Result<Loaded, String> {
        let owners = self.trusted_owners()?;
        let trusted = |p: &Path| -> Result<(), String> {
            let meta = std::fs::symlink_metadata(p).map_err(|e| e.to_string())?;
            trustworthy(&meta, p, &owners)
        };
        trusted(&self.root.join("entries"))?;
        trusted(dir)?;
        let manifest_path = dir.join("manifest.json");
        trusted(&manifest_path)?;
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| e.to_string())?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut files = Vec::new();
        for f in &manifest.files {
            if f.name.contains('/') || f.name.starts_with('.') {
                return Err(format!("bad file name {:?}", f.name));
            }
            let path = dir.join("files").join(&f.name);
            trusted(&path)?;
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", f.name))?;
            if bytes.len() as u64 != f.size || sha256_hex(&bytes) != f.sha256 {
                return Err(format!("{} does not match its manifest", f.name));
            }
            files.push((f.name.clone(), bytes));
        }
        Ok(Loaded { manifest, files })
    }

    /// Who may own entries: root, us, and for a shared tier the owner of its folder (the
    /// admin who ran `rustmeter prewarm`), provided that folder is writable by nobody
    /// else. Our own tier's folder must be ours (or root's) itself.
    fn trusted_owners(&self) -> Result<[u32; 3], String> {
        let me = unsafe { libc::geteuid() };
        let meta = std::fs::metadata(&self.root).map_err(|e| e.to_string())?;
        let owners = [0, me, if self.shared { meta.uid() } else { me }];
        trustworthy(&meta, &self.root, &owners)?;
        Ok(owners)
    }

    /// Verified entries of the crate named `crate_name` (rustc's name), for reports
    /// (`rustmeter doctor`). Reads manifests and hashes files; writes nothing.
    pub fn entries_of(&self, crate_name: &str) -> Vec<Manifest> {
        let mut found = Vec::new();
        for entry in read_dir(&self.root.join("entries")) {
            let dir = entry.path();
            let named = std::fs::read_to_string(dir.join("manifest.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Manifest>(&t).ok())
                .is_some_and(|m| m.crate_name == crate_name);
            if named {
                if let Ok(loaded) = self.load(&dir) {
                    found.push(loaded.manifest);
                }
            }
        }
        found
    }

    /// Marks an entry as just used; does nothing on a shared (read-only) tier.
    pub fn touch(&self, key: &str) {
        if self.shared {
            return;
        }
        let path = self.entry_dir(key).join("atime");
        if let Ok(file) = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
        {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Writes an entry next to the others and renames it into place. `Ok(false)` when
    /// another process published the same key first (ours is dropped).
    pub fn publish(
        &self,
        key: &str,
        manifest: &Manifest,
        sources: &[PathBuf],
    ) -> std::io::Result<bool> {
        let tmp = self.root.join("tmp").join(format!(
            "{key}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        let result = self.write_entry(&tmp, key, manifest, sources);
        if result.as_ref().map_or(true, |published| !published) {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_entry(
        &self,
        tmp: &Path,
        key: &str,
        manifest: &Manifest,
        sources: &[PathBuf],
    ) -> std::io::Result<bool> {
        let files_dir = tmp.join("files");
        create_dirs(&files_dir)?;
        let mut manifest = manifest.clone();
        manifest.files.clear();
        for source in sources {
            let name = source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| std::io::Error::other("output without a file name"))?;
            let bytes = std::fs::read(source)?;
            let dest = files_dir.join(&name);
            std::fs::write(&dest, &bytes)?;
            let exec = std::fs::metadata(source)?.permissions().mode() & 0o111 != 0;
            set_mode(&dest, if exec { 0o755 } else { 0o644 })?;
            manifest.files.push(StoredFile {
                name,
                size: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            });
        }
        let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
        std::fs::write(tmp.join("manifest.json"), text)?;
        set_mode(&tmp.join("manifest.json"), 0o644)?;
        std::fs::write(tmp.join("atime"), b"")?;
        set_mode(&files_dir, 0o755)?;
        set_mode(tmp, 0o755)?;
        let dest = self.entry_dir(key);
        create_dirs(dest.parent().unwrap_or(&self.root))?;
        match std::fs::rename(tmp, &dest) {
            Ok(()) => Ok(true),
            Err(_) if dest.is_dir() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Renames an entry to the trash, then deletes it: a reader holding it open still
    /// reads whole files or fails (and misses); nobody sees half an entry under its key.
    pub fn remove_entry(&self, dir: &Path) {
        let trash = self.root.join("trash");
        if std::fs::create_dir_all(&trash).is_err() {
            return;
        }
        let name = format!(
            "{}-{}",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        );
        let target = trash.join(name);
        if std::fs::rename(dir, &target).is_ok() {
            let _ = std::fs::remove_dir_all(target);
        }
    }

    /// Evicts least-recently-used entries until the tier fits in `max_bytes`; also
    /// clears temp folders and trash left by killed writers (older than an hour).
    pub fn evict(&self, max_bytes: u64) -> usize {
        for sub in ["tmp", "trash"] {
            for entry in read_dir(&self.root.join(sub)) {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(3600));
                if old {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = read_dir(&self.root.join("entries"))
            .into_iter()
            .map(|e| {
                let dir = e.path();
                let used = std::fs::metadata(dir.join("atime"))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (used, dir_size(&dir), dir)
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort_by_key(|e| e.0);
        let mut removed = 0;
        for (_, size, dir) in entries {
            if total <= max_bytes {
                break;
            }
            self.remove_entry(&dir);
            total = total.saturating_sub(size);
            removed += 1;
        }
        removed
    }
}

/// `RUSTMETER_CACHE_MAX`, the size bound of a writable tier: `2000000000`, `500M`, `2G`,
/// `2GB` (default 2 GiB; a bad value is reported by the kernel and the default used).
pub fn max_bytes_from_env() -> u64 {
    crate::settings::size(&crate::settings::CACHE_MAX)
}

/// Not a symlink, owned by one of `owners`, writable by nobody else (no group/other
/// write bit): then no other learner can have planted or changed it.
fn trustworthy(meta: &std::fs::Metadata, path: &Path, owners: &[u32]) -> Result<(), String> {
    if meta.file_type().is_symlink() {
        return Err(format!("{} is a symlink", path.display()));
    }
    if !owners.contains(&meta.uid()) {
        return Err(format!("{} is owned by uid {}", path.display(), meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("{} is writable by others", path.display()));
    }
    Ok(())
}

/// `mkdir -p` with mode 0755 (the umask can only take bits away, never add group write).
pub fn create_dirs(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn read_dir(dir: &Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().collect())
        .unwrap_or_default()
}

fn dir_size(dir: &Path) -> u64 {
    read_dir(dir)
        .into_iter()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_tier(name: &str) -> Tier {
        let root = std::env::temp_dir().join(format!("rm-depcache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Tier {
            root,
            shared: false,
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            crate_name: "demo".into(),
            out_dir: "/o".into(),
            build_out_dir: None,
            cargo_home: "/c".into(),
            shims: "/s".into(),
            files: Vec::new(),
            stderr: String::new(),
            env_deps: Vec::new(),
            features: vec!["std".into()],
        }
    }

    #[test]
    fn publish_then_hit_then_corrupt_is_removed() {
        let tier = temp_tier("store");
        let src = tier.root.join("libdemo.rlib");
        std::fs::write(&src, b"rlib bytes").unwrap();
        assert!(tier
            .publish("k1", &manifest(), std::slice::from_ref(&src))
            .unwrap());
        let found = tier.entries_of("demo");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].features, ["std"]);
        assert!(tier.entries_of("other").is_empty());
        // A second publisher of the same key loses quietly.
        assert!(!tier.publish("k1", &manifest(), &[src]).unwrap());
        match tier.lookup("k1") {
            Lookup::Hit(l) => assert_eq!(
                l.files,
                vec![("libdemo.rlib".into(), b"rlib bytes".to_vec())]
            ),
            _ => panic!("expected a hit"),
        }
        let stored = tier.entry_dir("k1").join("files").join("libdemo.rlib");
        set_mode(&stored, 0o644).unwrap();
        std::fs::write(&stored, b"rlib byteZ").unwrap();
        assert!(matches!(tier.lookup("k1"), Lookup::Corrupt(_)));
        assert!(!tier.entry_dir("k1").exists(), "a corrupt entry is removed");
        assert!(matches!(tier.lookup("k1"), Lookup::Miss));
        std::fs::remove_dir_all(&tier.root).unwrap();
    }

    #[test]
    fn writable_by_others_is_not_trusted() {
        let mut tier = temp_tier("trust");
        let src = tier.root.join("libdemo.rlib");
        std::fs::write(&src, b"x").unwrap();
        tier.publish("k", &manifest(), &[src]).unwrap();
        tier.shared = true;
        set_mode(&tier.entry_dir("k"), 0o777).unwrap();
        assert!(matches!(tier.lookup("k"), Lookup::Corrupt(_)));
        assert!(
            tier.entry_dir("k").exists(),
            "a shared tier is never modified"
        );
        std::fs::remove_dir_all(&tier.root).unwrap();
    }

    #[test]
    fn eviction_drops_least_recently_used() {
        let tier = temp_tier("evict");
        let src = tier.root.join("libdemo.rlib");
        std::fs::write(&src, vec![0u8; 10_000]).unwrap();
        for k in ["old", "new"] {
            tier.publish(k, &manifest(), std::slice::from_ref(&src))
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
            tier.touch(k);
        }
        assert_eq!(tier.evict(15_000), 1);
        assert!(!tier.entry_dir("old").exists());
        assert!(tier.entry_dir("new").exists());
        std::fs::remove_dir_all(&tier.root).unwrap();
    }
}
