//! Per-kernel scratch space: evcxr's build folder and rustmeter's runtime files live in
//! `<base>/kernel-<pid>`, removed on shutdown; folders of kernels that died without
//! cleaning up are removed when the next kernel starts, and the processes their cells left
//! are stopped (see `launcher`). Chooses, once per process, the runtime and cache folders
//! every other module uses: the first candidate whose ancestors no other account can
//! write in (`private_dir`), remembering which were refused and why. Owns nothing else.

use std::path::{Path, PathBuf};

pub struct WorkDir {
    pub path: PathBuf,
}

/// The folders this process uses, chosen once: the first candidate of each that is safe
/// (see `private_dir`), and why the ones before it were refused.
struct Chosen {
    runtime: PathBuf,
    cache: PathBuf,
    refusals: Vec<String>,
    /// Set when no candidate was safe: nothing may be built, and this says why and what to do.
    none_safe: Option<String>,
}

fn chosen() -> &'static Chosen {
    static CHOSEN: std::sync::OnceLock<Chosen> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| {
        let mut refusals = Vec::new();
        let cache = first_safe(cache_candidates(), &mut refusals);
        let runtime = cache
            .as_ref()
            .and_then(|cache| first_safe(runtime_candidates(cache), &mut refusals));
        if let Some(tier) = crate::settings::path(&crate::settings::SHARED_CACHE) {
            if let Err(refusal) = crate::private_dir::check_ancestors(&tier) {
                refusals.push(format!(
                    "RUSTMETER_SHARED_CACHE: {refusal}; the shared dependency cache is not used"
                ));
            }
        }
        let none_safe = runtime.is_none().then(|| {
            format!(
                "no folder is safe to build in ({}): set RUSTMETER_CACHE_DIR to a folder only you can write in, with no folder above it that another account can write in",
                refusals.join("; ")
            )
        });
        // Never used for anything when `none_safe` is set (`WorkDir::create` stops first).
        let unusable = || PathBuf::from("/nonexistent/rustmeter");
        Chosen {
            runtime: runtime.unwrap_or_else(unusable),
            cache: cache.unwrap_or_else(unusable),
            refusals,
            none_safe,
        }
    })
}

/// The first candidate `private_dir::create` accepts, or none; each refused one is noted
/// with the folder used instead. `(setting, path)`: what named the folder, for the message.
fn first_safe(candidates: Vec<(&str, PathBuf)>, refusals: &mut Vec<String>) -> Option<PathBuf> {
    let mut refused = Vec::new();
    for (source, path) in candidates {
        match crate::private_dir::create(&path) {
            Ok(()) => {
                refusals.extend(
                    refused
                        .into_iter()
                        .map(|r| format!("{r}; the kernel uses {} instead", path.display())),
                );
                return Some(path);
            }
            Err(refusal) => refused.push(format!("{source}: {refusal}")),
        }
    }
    refusals.extend(refused);
    None
}

/// `$XDG_CACHE_HOME/rustmeter` and `~/.cache/rustmeter`. No temporary folder: every
/// ancestor of a build folder must be safe, and `/tmp` is not.
fn cache_candidates() -> Vec<(&'static str, PathBuf)> {
    let mut candidates = Vec::new();
    if let Some(dir) = crate::settings::path(&crate::settings::CACHE_DIR) {
        candidates.push(("RUSTMETER_CACHE_DIR", dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        candidates.push(("XDG_CACHE_HOME", PathBuf::from(dir).join("rustmeter")));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let dir = PathBuf::from(home).join(".cache").join("rustmeter");
        if !candidates.iter().any(|(_, c)| *c == dir) {
            candidates.push(("the cache folder in your home", dir));
        }
    }
    candidates
}

/// Why no folder can be built in, when none of the candidates was safe.
pub fn none_safe() -> Option<&'static str> {
    chosen().none_safe.as_deref()
}

/// `$XDG_RUNTIME_DIR` counts only when it is a private folder of ours (as logind makes it).
fn runtime_candidates(cache: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut candidates = Vec::new();
    if let Some(dir) = crate::settings::path(&crate::settings::RUNTIME_DIR) {
        candidates.push(("RUSTMETER_RUNTIME_DIR", dir));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if crate::private_dir::verify(&dir).is_ok() {
            candidates.push(("XDG_RUNTIME_DIR", dir.join("rustmeter")));
        }
    }
    candidates.push(("the cache folder", cache.join("run")));
    candidates
}

/// Where kernel folders and warm spares live: `$RUSTMETER_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/rustmeter`, else `<cache dir>/run`; the first that is safe.
pub fn base_dir() -> PathBuf {
    chosen().runtime.clone()
}

/// Where generated shim crates, the dependency cache and labels live:
/// `$RUSTMETER_CACHE_DIR`, else `~/.cache/rustmeter`; the first that is safe.
pub fn cache_dir() -> PathBuf {
    chosen().cache.clone()
}

/// The configured or default folders that were refused as unsafe, one line each (the
/// first cell and `rustmeter doctor` show them).
pub fn refused_folders() -> &'static [String] {
    &chosen().refusals
}

/// Labelled cells' telemetry, kept per user across kernels (for `:compare`, `rustmeter::cell`).
pub fn labels_dir() -> PathBuf {
    cache_dir().join("labels")
}

impl WorkDir {
    /// Creates this kernel's folder (0700) after removing those of dead kernels and
    /// stopping the processes their cells left running.
    pub fn create() -> std::io::Result<WorkDir> {
        if let Some(why) = none_safe() {
            return Err(std::io::Error::other(why));
        }
        let base = base_dir();
        remove_stale(&base);
        crate::launcher::stop_orphaned_cell_processes();
        let path = base.join(format!("kernel-{}", std::process::id()));
        // Made now: the user-code process writes its runtime page here in its first cell.
        for folder in [&path, &path.join("telemetry")] {
            crate::private_dir::create(folder)
                .map_err(|refusal| std::io::Error::other(refusal.0))?;
        }
        Ok(WorkDir { path })
    }

    pub fn evcxr_dir(&self) -> PathBuf {
        self.path.join("evcxr")
    }

    /// Environment for the user-code child, applied when it (re)starts.
    pub fn child_env_file(&self) -> PathBuf {
        self.path.join("child-env")
    }

    /// Compile progress written by the rustc wrapper (format: `depcache::record`).
    pub fn build_events_file(&self) -> PathBuf {
        self.path.join("build-events.log")
    }

    /// Telemetry of finished cells, for the `rustmeter` crate in cells.
    pub fn telemetry_dir(&self) -> PathBuf {
        self.path.join("telemetry")
    }

    /// Removes the folder; tried again while something still writes into it (a build
    /// ending as the kernel stops), for at most a second.
    pub fn remove(&self) {
        for _ in 0..20 {
            match std::fs::remove_dir_all(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                _ => return,
            }
        }
    }
}

/// A folder to bind and connect Unix sockets in. A socket path holds at most 107 bytes,
/// which a deep folder (a long `TMPDIR` or `RUSTMETER_RUNTIME_DIR`) exceeds; such a folder
/// is reached through `/proc/self/fd/<fd>` of a handle kept open here (about 20 bytes).
/// Paths made with it work only in this process, and only while it lives.
pub struct SocketFolder {
    _handle: Option<std::fs::File>,
    path: PathBuf,
}

/// The longest Unix socket path (`sun_path` is 108 bytes with its closing NUL).
const MAX_SOCKET_PATH: usize = 107;

impl SocketFolder {
    /// `dir` itself when `dir/<name>` fits for names up to `longest_name` bytes.
    pub fn open(dir: &Path, longest_name: usize) -> std::io::Result<SocketFolder> {
        if dir.as_os_str().len() + 1 + longest_name <= MAX_SOCKET_PATH {
            return Ok(SocketFolder {
                _handle: None,
                path: dir.to_path_buf(),
            });
        }
        let handle = std::fs::File::open(dir)?;
        Ok(SocketFolder {
            path: fd_path(&handle),
            _handle: Some(handle),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `/proc/self/fd/<fd>`: the open folder `folder`, by a short path valid in this process.
pub fn fd_path(folder: &std::fs::File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", folder.as_raw_fd()))
}

/// Writes `contents` so that readers (cells, other kernels) never see half a file:
/// to a temporary name in the same folder, then renamed into place.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    replace_file(path, contents)
}

/// `write_atomic` into a folder that must exist already: a kernel's work folder is removed
/// at shutdown while a cell may still be ending (its process was just killed), and that
/// cell's late write must fail, not bring the folder back.
pub fn replace_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    // One a crash of this pid left behind goes first; O_EXCL then refuses anything else.
    let _ = std::fs::remove_file(&tmp);
    let mut file = crate::private_dir::create_new_file(&tmp)?;
    std::io::Write::write_all(&mut file, contents.as_bytes())?;
    std::fs::rename(tmp, path)
}

/// Removes `kernel-<pid>` folders whose process is gone or is no longer a rustmeter.
pub fn remove_stale(base: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("kernel-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || is_rustmeter(pid) {
            continue;
        }
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn is_rustmeter(pid: u32) -> bool {
    crate::sys::cmdline(pid).join(" ").contains("rustmeter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_folders_are_removed_live_ones_kept() {
        let base = std::env::temp_dir().join(format!("rm-workdir-test-{}", std::process::id()));
        std::fs::create_dir_all(base.join("kernel-999999999")).unwrap();
        std::fs::create_dir_all(base.join(format!("kernel-{}", std::process::id()))).unwrap();
        std::fs::create_dir_all(base.join("unrelated")).unwrap();
        assert_eq!(remove_stale(&base), 1);
        assert!(base.join(format!("kernel-{}", std::process::id())).exists());
        assert!(base.join("unrelated").exists());
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn deep_folders_get_short_socket_paths_that_bind() {
        let deep = std::env::temp_dir()
            .join(format!("rm-socket-folder-{}", std::process::id()))
            .join("a".repeat(60))
            .join("b".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let folder = SocketFolder::open(&deep, 10).unwrap();
        assert!(
            folder.path().starts_with("/proc/self/fd/"),
            "{:?}",
            folder.path()
        );
        let socket = folder.path().join("wire-1");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::os::unix::net::UnixStream::connect(&socket).unwrap();
        assert!(deep.join("wire-1").exists());
        let shallow = SocketFolder::open(Path::new("/tmp"), 10).unwrap();
        assert_eq!(shallow.path(), Path::new("/tmp"));
        std::fs::remove_dir_all(deep.parent().unwrap().parent().unwrap()).unwrap();
    }
}
