//! One copy of tokio (and rayon) per user-code process.
//!
//! evcxr links dependencies statically into every cell's library, so each cell carries
//! its own tokio: a runtime made by cell 1 and a task spawned by cell 3 see different
//! thread-local contexts ("no reactor running"), and rayon starts a new global pool per
//! cell. The fix here: crates with process-global state are declared as a small **dylib
//! shim** (`rustmeter-tokio`, a `dylib` crate whose whole body is `pub use tokio::*;`)
//! under the dependency name the learner uses (`tokio`). Cells compiled with evcxr's
//! `-C prefer-dynamic` then link the shim's `.so` — one file, loaded once by the child —
//! and every cell shares the one tokio inside it, the way Bevy's `dynamic_linking` works.
//!
//! This module owns the shim crates on disk and the dependency lines that point at them;
//! it runs no compiler.

use std::path::{Path, PathBuf};

/// The `rustmeter` crate cells use (`rustmeter::last()`), shipped inside this binary so
/// it needs no network; written out on first use.
pub fn api_dep_line(root: &Path) -> std::io::Result<String> {
    const MANIFEST: &str = include_str!("../../../api/Cargo.toml");
    const LIB: &str = include_str!("../../../api/src/lib.rs");
    const DEMO: &str = include_str!("../../../api/src/demo.rs");
    const MARKERS: &str = include_str!("../../../api/src/markers.rs");
    // Named after the sources too: kernels built from other commits share this folder.
    let sources = [MANIFEST, LIB, DEMO, MARKERS].concat();
    let dir = root.join(format!(
        "rustmeter-api-{}-{:08x}",
        env!("CARGO_PKG_VERSION"),
        fnv1a(sources.as_bytes()) as u32
    ));
    write_if_changed(&dir.join("Cargo.toml"), MANIFEST)?;
    write_if_changed(&dir.join("src").join("lib.rs"), LIB)?;
    write_if_changed(&dir.join("src").join("demo.rs"), DEMO)?;
    write_if_changed(&dir.join("src").join("markers.rs"), MARKERS)?;
    Ok(format!(
        ":dep rustmeter = {{ package = \"rustmeter-api\", path = \"{}\" }}",
        dir.display()
    ))
}

/// A crate served through a dylib shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShimSpec {
    /// The name cells use (`tokio`).
    pub name: &'static str,
    /// Major version the shim provides; a request for another major is refused.
    pub major: &'static str,
    /// Features the shim always enables.
    pub features: &'static [&'static str],
}

pub const TOKIO: ShimSpec = ShimSpec {
    name: "tokio",
    major: "1",
    features: &["full"],
};

pub const RAYON: ShimSpec = ShimSpec {
    name: "rayon",
    major: "1",
    features: &[],
};

/// Rust source of the tokio shim's hidden `__rustmeter` module (see the file's comments).
pub const TOKIO_INTERRUPT_SOURCE: &str = include_str!("../../shim/interrupt.rs");

/// Rust source of the tokio shim's runtime measuring (`__rustmeter_runtime`) and the
/// layout of the page it writes, which the kernel reads (`telemetry::runtime`).
pub const TOKIO_RUNTIME_METER_SOURCE: &str = include_str!("../../shim/runtime_meter.rs");
pub const RUNTIME_PAGE_SOURCE: &str = include_str!("../../shim/runtime_page.rs");

/// The trait a cell imports so its rewritten awaits (`x.__rm_interruptible().await?`)
/// resolve; see [`super::awaits`].
/// Named (not `as _`) so evcxr keeps one copy of it however often it is declared.
pub const INTERRUPTIBLE_IMPORT: &str =
    "use tokio::__rustmeter::RmInterruptible as __RmInterruptible;";

/// The trait that runs async cells through the shim's one compiled `block_on` (see
/// `RmBlockOn` in the shim's source): an async cell then compiles no tokio code.
pub const BLOCK_ON_IMPORT: &str = "use tokio::__rustmeter::RmBlockOn as __RmBlockOn;";

pub const ALL: [ShimSpec; 2] = [TOKIO, RAYON];

/// Compiled with the tokio declaration: its `.await` and `?` make evcxr switch to async
/// mode and allow `?` right then (evcxr learns both only from the compile errors E0728
/// and E0277, and has no setting for them). From then on every cell runs through
/// `RmBlockOn::block_on`, so cells that never await have the runtime entered, and the
/// first cell that awaits is built once. Two statements, so that rustc reports both
/// errors in one failed build: the declaration builds twice, not three times.
pub const ASYNC_MODE_SWITCH: &str =
    "std::future::ready(()).await;\nOk::<(), tokio::__rustmeter::Interrupted>(())?;";

/// `RUSTMETER_SHARED_DEPS=off` turns shims off: evcxr's own static linking (one copy per
/// cell, so tasks do not survive their cell). For comparison and as an escape hatch.
pub fn enabled() -> bool {
    crate::settings::switch(&crate::settings::SHARED_DEPS)
}

pub fn find(name: &str) -> Option<ShimSpec> {
    ALL.into_iter().find(|s| s.name == name)
}

/// Writes (if missing) the shim crate for `spec` with `extra_features` and returns the
/// `:dep` line that declares it under its usual name.
pub fn dep_line(root: &Path, spec: ShimSpec, extra_features: &[String]) -> std::io::Result<String> {
    let mut features: Vec<String> = spec.features.iter().map(|f| f.to_string()).collect();
    for f in extra_features {
        if !features.contains(f) {
            features.push(f.clone());
        }
    }
    features.sort();
    let dir = shim_dir(root, spec, &features);
    write_shim(&dir, spec, &features)?;
    let mut line = format!(
        ":dep {} = {{ package = \"rustmeter-{}\", path = \"{}\" }}",
        spec.name,
        spec.name,
        dir.display()
    );
    if spec == TOKIO {
        // Compiled with the declaration, so it costs no build of its own; the watcher
        // thread starts now, not inside the first measured async cell.
        line.push('\n');
        line.push_str(INTERRUPTIBLE_IMPORT);
        line.push('\n');
        line.push_str(BLOCK_ON_IMPORT);
        line.push_str("\ntokio::__rustmeter::start_watcher();\n");
        line.push_str(ASYNC_MODE_SWITCH);
    }
    Ok(line)
}

/// Kernels of different rustmeter versions share the shim folder on one machine: the
/// folder is named after the shim's source too, so they never overwrite each other's.
fn shim_dir(root: &Path, spec: ShimSpec, features: &[String]) -> PathBuf {
    let suffix = if features.is_empty() {
        "default".to_string()
    } else {
        features.join("+")
    };
    let version = fnv1a(shim_source(spec).as_bytes());
    root.join(format!(
        "{}-{}-{}-{:08x}",
        spec.name, spec.major, suffix, version as u32
    ))
}

/// A stable hash (std's hashers may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn shim_source(spec: ShimSpec) -> String {
    let mut source = format!(
        "//! Generated by rustmeter: re-exports {0} so all cells link one copy.\npub use {0}::*;\n",
        spec.name
    );
    if spec == TOKIO {
        // The cancel channel that interrupts async cells at their next `.await`.
        source.push_str(TOKIO_INTERRUPT_SOURCE);
        // The runtime's hooks and the page the kernel reads them from.
        source.push_str(TOKIO_RUNTIME_METER_SOURCE);
        source.push_str("#[doc(hidden)]\npub mod __rustmeter_page {\n");
        source.push_str(RUNTIME_PAGE_SOURCE);
        source.push_str("}\n");
    }
    source
}

fn write_shim(dir: &Path, spec: ShimSpec, features: &[String]) -> std::io::Result<()> {
    let features = features
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let manifest = format!(
        r#"[package]
name = "rustmeter-{name}"
version = "1.0.0"
edition = "2021"
description = "rustmeter: one shared copy of {name} for every cell (generated)"

[lib]
crate-type = ["dylib"]
path = "lib.rs"

[dependencies]
{name} = {{ version = "{major}", features = [{features}] }}
"#,
        name = spec.name,
        major = spec.major,
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest)?;
    write_if_changed(&dir.join("lib.rs"), &shim_source(spec))
}

/// Several kernels may write the same shim at once: write to a temporary name, rename.
fn write_if_changed(path: &Path, contents: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|c| c == contents) {
        return Ok(());
    }
    crate::workdir::write_atomic(path, contents)
}

/// What a learner's `:dep NAME = SPEC` asked for, in the parts a shim cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepRequest {
    pub version: Option<String>,
    pub features: Vec<String>,
}

/// Reads the version and features of a `:dep` spec: `"1"`, `"1.38"`,
/// `{ version = "1", features = ["full"] }`. Other keys are ignored.
pub fn parse_dep_spec(spec: &str) -> Result<DepRequest, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(DepRequest {
            version: None,
            features: Vec::new(),
        });
    }
    if let Some(version) = spec.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Ok(DepRequest {
            version: Some(version.to_string()),
            features: Vec::new(),
        });
    }
    let value: toml_lite::Table = toml_lite::parse_inline_table(spec)?;
    Ok(DepRequest {
        version: value.version,
        features: value.features,
    })
}

/// Checks a request against a shim's major version.
pub fn version_fits(spec: ShimSpec, version: Option<&str>) -> bool {
    match version {
        None => true,
        Some(v) => {
            let v = v.trim_start_matches(['^', '=', '~', ' ']);
            v == "*" || v == spec.major || v.starts_with(&format!("{}.", spec.major))
        }
    }
}

/// The small subset of TOML inline tables a `:dep` line uses.
mod toml_lite {
    pub struct Table {
        pub version: Option<String>,
        pub features: Vec<String>,
    }

    pub fn parse_inline_table(text: &str) -> Result<Table, String> {
        let inner = text
            .trim()
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| {
                format!("expected \"VERSION\" or {{ version = ..., features = [...] }}, got {text}")
            })?;
        let mut version = None;
        let mut features = Vec::new();
        let mut rest = inner;
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq].trim().trim_start_matches(',').trim();
            let after = rest[eq + 1..].trim_start();
            let (value, remaining) = if after.starts_with('[') {
                let end = after.find(']').ok_or("unclosed [ in :dep features")?;
                (&after[..=end], &after[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            match key {
                "version" => version = Some(value.trim().trim_matches('"').to_string()),
                "features" => {
                    features = value
                        .trim_matches(['[', ']'])
                        .split(',')
                        .map(|f| f.trim().trim_matches('"').to_string())
                        .filter(|f| !f.is_empty())
                        .collect()
                }
                _ => {}
            }
            rest = remaining;
        }
        Ok(Table { version, features })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dep_specs() {
        assert_eq!(
            parse_dep_spec("\"1.38\"").unwrap().version.as_deref(),
            Some("1.38")
        );
        let r = parse_dep_spec(r#"{ version = "1", features = ["full", "test-util"] }"#).unwrap();
        assert_eq!(r.version.as_deref(), Some("1"));
        assert_eq!(r.features, vec!["full", "test-util"]);
        let r = parse_dep_spec(r#"{features=["rt"],version="1.0"}"#).unwrap();
        assert_eq!(r.features, vec!["rt"]);
        assert_eq!(r.version.as_deref(), Some("1.0"));
        assert!(parse_dep_spec("garbage").is_err());
    }

    #[test]
    fn versions_fit_major() {
        assert!(version_fits(TOKIO, Some("1")));
        assert!(version_fits(TOKIO, Some("^1.40")));
        assert!(version_fits(TOKIO, None));
        assert!(!version_fits(TOKIO, Some("0.2")));
        assert!(!version_fits(TOKIO, Some("10")));
    }

    #[test]
    fn dep_line_points_at_written_shim() {
        let dir = std::env::temp_dir().join(format!("rm-shim-test-{}", std::process::id()));
        let line = dep_line(&dir, TOKIO, &["test-util".to_string()]).unwrap();
        assert!(line.starts_with(":dep tokio = { package = \"rustmeter-tokio\""));
        let shim = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("tokio-1-full+test-util-"))
            .expect("the shim folder");
        assert!(line.contains(&*shim.to_string_lossy()));
        assert!(std::fs::read_to_string(shim.join("lib.rs"))
            .unwrap()
            .contains("__rustmeter"));
        let manifest = std::fs::read_to_string(shim.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("crate-type = [\"dylib\"]"));
        assert!(manifest.contains("\"full\", \"test-util\""));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
