//! rustmeter's shared dependency cache: compiled registry crates (and rustmeter's own
//! shim crates) reused across kernels, so a new kernel's `:dep tokio` does not rebuild
//! tokio.
//!
//! evcxr builds every kernel's cells in a fresh cargo project with its own `target/`.
//! The engine sets `RUSTC_WRAPPER=<this binary>` plus [`WRAPPER_MARKER`] in evcxr's build
//! environment; cargo then runs `rustmeter <rustc> <args…>` and `main` hands that to
//! [`wrapper::run`] before anything else. The wrapper keys the invocation ([`key`]),
//! looks it up in the tiers ([`store`]), restores or compiles and publishes, and writes
//! the hit record and progress events ([`record`]).
//!
//! Owns: the wrapper process, the tiers on disk, `rustmeter prewarm` ([`prewarm`]). Must
//! not: cache anything whose source can change (the cell crate, path crates other than
//! the shims, build scripts), fail a build for a cache reason, or write to the shared
//! tier from a kernel.
//!
//! Tiers, looked up in this order:
//! - `$RUSTMETER_SHARED_CACHE` (e.g. `/opt/rustmeter/cache`): read-only, filled by
//!   `rustmeter prewarm --cache DIR`; an entry is used only if it, its files and the tier
//!   are owned by root, the reader or the tier's owner and writable by nobody else;
//! - the user tier `<cache dir>/deps` (`~/.cache/rustmeter/deps`; `RUSTMETER_CACHE_DIR`
//!   moves the cache dir): read and written.
//!
//! `RUSTMETER_DEP_CACHE_TIER=DIR` (set by `prewarm --cache DIR`) makes DIR the only tier.
//! `RUSTMETER_DEP_CACHE=off` turns the whole mechanism off; `RUSTMETER_CACHE_MAX` bounds a
//! writable tier's size (default 2 GiB, least recently used entries evicted). All are read
//! through `crate::settings`.

pub mod digest;
pub mod key;
pub mod link;
pub mod record;
pub mod rewrite;
pub mod store;
pub mod wrapper;

use crate::settings;
use std::path::{Path, PathBuf};
use store::Tier;

/// Set (to `1`) in cargo's environment next to `RUSTC_WRAPPER`: this process is the wrapper.
pub const WRAPPER_MARKER: &str = settings::RUSTC_WRAPPER.name;

/// True when cargo started this binary as the rustc wrapper.
pub fn is_wrapper_invocation() -> bool {
    settings::text(&settings::RUSTC_WRAPPER).is_some_and(|v| v == "1")
}

/// `RUSTMETER_DEP_CACHE=off` turns the cache off (the wrapper only runs rustc).
/// The cells a learner's first async notebook runs: what `rustmeter prewarm` compiles into
/// a cache tier and what spares warm up with (so both are cache hits).
pub const CANONICAL_CELLS: [&str; 2] = [
    ":dep tokio = { version = \"1\", features = [\"full\"] }",
    "tokio::time::sleep(std::time::Duration::from_millis(1)).await;\nlet _ = rustmeter::last();",
];

pub fn enabled() -> bool {
    settings::switch(&settings::DEP_CACHE)
}

/// The build environment the engine gives evcxr so that cargo runs the wrapper (also
/// with the cache off: it times builds and gives tokio its task hooks); empty when this
/// executable cannot be found.
pub fn build_envs(events_file: &Path) -> Vec<(String, String)> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    vec![
        ("RUSTC_WRAPPER".into(), exe.to_string_lossy().into_owned()),
        (WRAPPER_MARKER.into(), "1".into()),
        (
            settings::BUILD_EVENTS.name.into(),
            events_file.to_string_lossy().into_owned(),
        ),
    ]
}

/// The crate evcxr builds each cell into (evcxr's `CRATE_NAME`).
pub const CELL_CRATE: &str = "ctx";

/// Where the wrapper leaves the warnings of the last successful build of the cell crate
/// (rustc's JSON diagnostics, one per line), next to the build events file: evcxr drops
/// them, and the kernel shows the ones that matter to a learner.
pub fn cell_warnings_file(events_file: &Path) -> PathBuf {
    events_file.with_file_name("cell-warnings.jsonl")
}

/// Where this process looks entries up, and the one tier it writes.
pub struct Tiers {
    pub lookup: Vec<Tier>,
    pub write: Tier,
}

impl Tiers {
    pub fn from_env() -> Tiers {
        if let Some(dir) = settings::path(&settings::DEP_CACHE_TIER) {
            let tier = Tier {
                root: dir,
                shared: false,
            };
            return Tiers {
                lookup: vec![tier.clone()],
                write: tier,
            };
        }
        let user = Tier {
            root: user_tier_dir(),
            shared: false,
        };
        let mut lookup = Vec::new();
        if let Some(dir) = settings::path(&settings::SHARED_CACHE) {
            // A tier another account could write in (or above) could plant artifacts
            // that run in cells: not used (the kernel says so on the first cell).
            if dir != user.root && crate::private_dir::check_ancestors(&dir).is_ok() {
                lookup.push(Tier {
                    root: dir,
                    shared: true,
                });
            }
        }
        lookup.push(user.clone());
        Tiers {
            lookup,
            write: user,
        }
    }
}

/// The per-user tier: `<cache dir>/deps`.
pub fn user_tier_dir() -> PathBuf {
    crate::workdir::cache_dir().join("deps")
}

/// `rustc -vV`, remembered in the writable tier per rustc path, size and mtime.
pub fn rustc_version(rustc: &Path, tier: &Tier) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let resolved = if rustc.components().count() > 1 {
        rustc.to_path_buf()
    } else {
        find_on_path(rustc).unwrap_or_else(|| rustc.to_path_buf())
    };
    let meta = std::fs::metadata(&resolved)?;
    let id = digest::sha256_hex(
        format!(
            "{}\0{}\0{}.{}",
            resolved.display(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec()
        )
        .as_bytes(),
    );
    let remembered = tier.root.join("rustc").join(&id[..32]);
    if let Ok(text) = std::fs::read_to_string(&remembered) {
        if text.starts_with("rustc ") {
            return Ok(text);
        }
    }
    let output = std::process::Command::new(&resolved).arg("-vV").output()?;
    if !output.status.success() {
        return Err(std::io::Error::other("rustc -vV failed"));
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let _ = store::create_dirs(&tier.root)
        .and_then(|()| crate::workdir::write_atomic(&remembered, &text));
    Ok(text)
}

fn find_on_path(program: &Path) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}
