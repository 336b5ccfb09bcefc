//! What one rustc invocation is, and its cache key.
//!
//! Owns parsing cargo's rustc command line ([`Invocation`]), deciding whether a crate may
//! be cached at all ([`Invocation::cacheable`]) and the key. Pure apart from reading the
//! crate's own source files, `OUT_DIR` and `rustc -vV`; must not touch a cache tier.
//!
//! ## What is in the key (sha256, hex)
//! - a format tag (`rustmeter-depcache-v1`), bumped when an entry's layout changes;
//! - `rustc -vV` (toolchain commit, host, LLVM): a different compiler never hits;
//! - every argument, with per-kernel paths normalized: the kernel's target folder becomes
//!   `$TARGET`, `$CARGO_HOME` and the shim folder become placeholders, `OUT_DIR` becomes
//!   `$OUT_DIR`; `--extern name=path` keeps the name and the file's basename (which
//!   carries cargo's metadata hash); `-C incremental=…` is dropped (it changes no output).
//!   So crate name, `-C metadata`, `-C extra-filename`, features (`--cfg`), opt level,
//!   codegen and linker flags, target and edition are all in;
//! - the sha256 of every `--extern` file: a crate restored from the cache must link
//!   against byte-identical dependencies, since rustc records each dependency's hash (SVH)
//!   and that hash can embed paths (e.g. serde's generated `OUT_DIR` file). If one
//!   dependency was rebuilt here rather than restored, everything above it misses too;
//! - the environment cargo sets for rustc that `env!` can read (`CARGO_PKG_*`,
//!   `CARGO_CRATE_NAME`, `CARGO_MANIFEST_DIR`/`_PATH`, `CARGO_PRIMARY_PACKAGE`,
//!   `CARGO_MANIFEST_LINKS`, `RUSTC_BOOTSTRAP`), paths normalized. Any other variable the
//!   crate read is listed in its dep-info (`# env-dep:`) and checked on every hit;
//! - the contents of every file under `OUT_DIR` (what the crate's build script generated);
//! - the crate's root source file, and for rustmeter's shim crates every file of the shim.

use super::digest::{hash_tree, hex, sha256_hex};
use ring::digest::{Context, SHA256};
use std::path::{Path, PathBuf};

pub use super::rewrite::Replacer;

/// Placeholders that stand for per-machine or per-kernel folders in keys.
pub const TARGET: &str = "$TARGET";
pub const CARGO_HOME: &str = "$CARGO_HOME";
pub const SHIMS: &str = "$SHIMS";
pub const OUT_DIR: &str = "$OUT_DIR";

/// Environment variables cargo sets for rustc that compiled code may read with `env!`.
fn env_in_key(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_CRATE_NAME"
                | "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_PRIMARY_PACKAGE"
                | "RUSTC_BOOTSTRAP"
        )
}

/// rustc flags whose value is the next argument.
const VALUE_FLAGS: &[&str] = &[
    "--crate-name",
    "--crate-type",
    "--edition",
    "--emit",
    "--out-dir",
    "--target",
    "--cap-lints",
    "--cfg",
    "--check-cfg",
    "--extern",
    "--print",
    "--explain",
    "--sysroot",
    "--remap-path-prefix",
    "--error-format",
    "--json",
    "--codegen",
    "--env-set",
    "-C",
    "-L",
    "-l",
    "-o",
    "-A",
    "-W",
    "-D",
    "-F",
    "-Z",
];

/// One call `rustc ARGS…` as cargo made it, with what the cache needs to know.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub rustc: PathBuf,
    pub args: Vec<String>,
    pub crate_name: Option<String>,
    pub source: Option<PathBuf>,
    pub out_dir: Option<PathBuf>,
    /// The build script's output folder, from the `OUT_DIR` environment variable.
    pub build_out_dir: Option<PathBuf>,
    /// `(name, value)` of the environment rustc runs with, as far as the key cares.
    pub env: Vec<(String, String)>,
}

/// Folders that may appear in arguments and differ between machines or kernels.
#[derive(Debug, Clone)]
pub struct Roots {
    pub cargo_home: PathBuf,
    pub shims: PathBuf,
}

impl Roots {
    /// From the wrapper's environment (inherited from the kernel through cargo).
    pub fn from_env() -> Roots {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .unwrap_or_else(|| PathBuf::from("/nonexistent-cargo-home"));
        Roots {
            cargo_home,
            shims: crate::workdir::cache_dir().join("shims"),
        }
    }

    pub fn registry_src(&self) -> PathBuf {
        self.cargo_home.join("registry").join("src")
    }
}

impl Invocation {
    /// `args[0]` is the rustc path, the rest its arguments.
    pub fn parse(args: &[String], env: impl IntoIterator<Item = (String, String)>) -> Option<Self> {
        let (rustc, rest) = args.split_first()?;
        let mut inv = Invocation {
            rustc: PathBuf::from(rustc),
            args: rest.to_vec(),
            crate_name: None,
            source: None,
            out_dir: None,
            build_out_dir: None,
            env: Vec::new(),
        };
        let mut i = 0;
        while i < rest.len() {
            let arg = rest[i].as_str();
            let next = rest.get(i + 1).map(String::as_str);
            match arg {
                "--crate-name" => inv.crate_name = next.map(str::to_string),
                "--out-dir" => inv.out_dir = next.map(PathBuf::from),
                _ if VALUE_FLAGS.contains(&arg) => {}
                _ if !arg.starts_with('-') && arg.ends_with(".rs") && inv.source.is_none() => {
                    inv.source = Some(PathBuf::from(arg));
                }
                _ => {}
            }
            i += if VALUE_FLAGS.contains(&arg) { 2 } else { 1 };
        }
        for (name, value) in env {
            if name == "OUT_DIR" {
                inv.build_out_dir = Some(PathBuf::from(&value));
            } else if env_in_key(&name) {
                inv.env.push((name, value));
            }
        }
        inv.env.sort();
        Some(inv)
    }

    /// tokio (from the registry, git or a vendored copy alike) gets `--cfg
    /// tokio_unstable`: the shared runtime's task hooks (spawn, poll, end), which the
    /// runtime telemetry is made of and the tokio shim calls, exist only then. It adds API
    /// and changes no behaviour of the rest; the flag is in the cache key.
    pub fn enable_tokio_task_hooks(&mut self) {
        let tokio = self.crate_name.as_deref() == Some("tokio");
        let already = self
            .args
            .windows(2)
            .any(|w| w == ["--cfg", "tokio_unstable"]);
        if tokio && !already {
            self.args.push("--cfg".into());
            self.args.push("tokio_unstable".into());
        }
    }

    /// A crate worth a build event: not one of cargo's probes (`-vV`, `--print`).
    pub fn crate_label(&self) -> Option<&str> {
        self.crate_name.as_deref().filter(|n| *n != "___")
    }

    /// Only crates whose source cannot change under the same version: registry crates
    /// and rustmeter's generated shims. Never the cell crate, build scripts, binaries,
    /// argument files, or anything without an `--out-dir`.
    pub fn cacheable(&self, roots: &Roots) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let name = self.crate_label().unwrap_or("build_script_build");
        if name.starts_with("build_script_") || self.out_dir.is_none() {
            return false;
        }
        if self.args.iter().any(|a| a.starts_with('@')) {
            return false;
        }
        let binary = self
            .args
            .windows(2)
            .any(|w| w[0] == "--crate-type" && w[1] == "bin");
        if binary || !source.is_absolute() {
            return false;
        }
        under(source, &roots.registry_src()) || under(source, &roots.shims)
    }

    /// The kernel's target folder (`…/target`), from the out-dir cargo gave:
    /// `<target>[/<triple>]/<profile>/deps` or `<target>[/<triple>]/<profile>/build/<unit>`.
    pub fn target_root(&self) -> Option<PathBuf> {
        let out = self.out_dir.as_ref()?;
        let profile = if out.file_name()? == "deps" {
            out.parent()?
        } else if out.parent()?.file_name()? == "build" {
            out.parent()?.parent()?
        } else {
            return None;
        };
        let mut root = profile.parent()?;
        let triple = self
            .args
            .windows(2)
            .find(|w| w[0] == "--target")
            .map(|w| w[1].as_str());
        if triple.is_some_and(|t| root.file_name().is_some_and(|n| n == t)) {
            root = root.parent()?;
        }
        Some(root.to_path_buf())
    }

    /// The arguments with per-kernel and per-machine paths replaced by placeholders.
    pub fn normalized_args(&self, roots: &Roots) -> Vec<String> {
        let replacer = self.normalizer(roots);
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.args.len() {
            let arg = self.args[i].as_str();
            let next = self.args.get(i + 1).map(String::as_str);
            if arg == "-C" && next.is_some_and(|n| n.starts_with("incremental=")) {
                i += 2;
                continue;
            }
            if arg.starts_with("-Cincremental=") {
                i += 1;
                continue;
            }
            if arg == "--extern" {
                if let Some(spec) = next {
                    out.push(arg.to_string());
                    out.push(match spec.split_once('=') {
                        Some((name, path)) => {
                            let base = Path::new(path)
                                .file_name()
                                .map(|b| b.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            format!("{name}={base}")
                        }
                        None => spec.to_string(),
                    });
                    i += 2;
                    continue;
                }
            }
            out.push(replacer.apply(arg));
            i += 1;
        }
        out
    }

    /// The files of `--extern name=path` arguments, in order.
    pub fn extern_files(&self) -> Vec<&str> {
        self.args
            .windows(2)
            .filter(|w| w[0] == "--extern")
            .filter_map(|w| w[1].split_once('=').map(|(_, path)| path))
            .collect()
    }

    fn normalizer(&self, roots: &Roots) -> Replacer {
        let mut pairs = Vec::new();
        if let Some(dir) = &self.build_out_dir {
            pairs.push((path_str(dir), OUT_DIR.to_string()));
        }
        if let Some(root) = self.target_root() {
            pairs.push((path_str(&root), TARGET.to_string()));
        }
        pairs.push((path_str(&roots.shims), SHIMS.to_string()));
        pairs.push((path_str(&roots.cargo_home), CARGO_HOME.to_string()));
        Replacer::new(pairs)
    }

    /// The cache key, or an error if an input could not be read (then: no caching).
    pub fn key(&self, roots: &Roots, rustc_version: &str) -> std::io::Result<String> {
        let replacer = self.normalizer(roots);
        let mut ctx = Context::new(&SHA256);
        let mut field = |label: &str, value: &[u8]| {
            ctx.update(label.as_bytes());
            ctx.update(&(value.len() as u64).to_le_bytes());
            ctx.update(value);
        };
        field("format", b"rustmeter-depcache-v1");
        field("rustc", rustc_version.as_bytes());
        for arg in self.normalized_args(roots) {
            field("arg", arg.as_bytes());
        }
        for path in self.extern_files() {
            field("extern", sha256_hex(&std::fs::read(path)?).as_bytes());
        }
        for (name, value) in &self.env {
            field(
                "env",
                format!("{name}={}", replacer.apply(value)).as_bytes(),
            );
        }
        if let Some(dir) = &self.build_out_dir {
            field("out_dir", hash_tree(dir)?.as_bytes());
        }
        if let Some(source) = &self.source {
            field("source", &std::fs::read(source)?);
            if under(source, &roots.shims) {
                if let Some(dir) = source.parent() {
                    field("shim", hash_tree(dir)?.as_bytes());
                }
            }
        }
        Ok(hex(ctx.finish().as_ref()))
    }
}

fn under(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
        || std::fs::canonicalize(root)
            .is_ok_and(|r| std::fs::canonicalize(path).is_ok_and(|p| p.starts_with(r)))
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots {
            cargo_home: PathBuf::from("/home/a/.cargo"),
            shims: PathBuf::from("/home/a/.cache/rustmeter/shims"),
        }
    }

    fn itoa_args(kernel: &str, opt: &str, features: &[&str]) -> Vec<String> {
        let target = format!("/tmp/rustmeter-0/{kernel}/evcxr/target");
        let mut args: Vec<String> = [
            "/rust/bin/rustc",
            "--crate-name",
            "itoa",
            "--edition=2021",
            "/home/a/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/itoa-1.0.19/src/lib.rs",
            "--crate-type",
            "lib",
            "-C",
            opt,
            "-C",
            "metadata=6c7a07f71d34eb09",
            "-C",
            "extra-filename=-599fa3c426c701fd",
            "--out-dir",
            &format!("{target}/x86_64-unknown-linux-gnu/debug/deps"),
            "--target",
            "x86_64-unknown-linux-gnu",
            "-C",
            &format!("incremental={target}/x86_64-unknown-linux-gnu/debug/incremental"),
            "-L",
            &format!("dependency={target}/x86_64-unknown-linux-gnu/debug/deps"),
            "-L",
            &format!("dependency={target}/debug/deps"),
            "--extern",
            &format!("core2={target}/x86_64-unknown-linux-gnu/debug/deps/libcore2-0123.rlib"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for f in features {
            args.push("--cfg".into());
            args.push(format!("feature=\"{f}\""));
        }
        args
    }

    fn key_of(args: &[String]) -> String {
        let inv = Invocation::parse(args, Vec::new()).unwrap();
        let mut ctx = Context::new(&SHA256);
        for a in inv.normalized_args(&roots()) {
            ctx.update(a.as_bytes());
            ctx.update(&[0]);
        }
        hex(ctx.finish().as_ref())
    }

    #[test]
    fn parses_what_the_cache_needs() {
        let inv =
            Invocation::parse(&itoa_args("kernel-1", "opt-level=2", &[]), Vec::new()).unwrap();
        assert_eq!(inv.crate_name.as_deref(), Some("itoa"));
        assert!(inv
            .source
            .as_ref()
            .unwrap()
            .ends_with("itoa-1.0.19/src/lib.rs"));
        assert_eq!(
            inv.target_root().unwrap(),
            PathBuf::from("/tmp/rustmeter-0/kernel-1/evcxr/target")
        );
        assert!(inv.cacheable(&roots()));
    }

    #[test]
    fn kernel_paths_do_not_change_the_key() {
        let a = key_of(&itoa_args("kernel-1", "opt-level=2", &["std"]));
        let b = key_of(&itoa_args("kernel-99999", "opt-level=2", &["std"]));
        assert_eq!(a, b);
        let norm = Invocation::parse(&itoa_args("kernel-1", "opt-level=2", &[]), Vec::new())
            .unwrap()
            .normalized_args(&roots());
        assert!(
            norm.contains(&"dependency=$TARGET/debug/deps".to_string()),
            "{norm:?}"
        );
        assert!(
            norm.contains(&"core2=libcore2-0123.rlib".to_string()),
            "{norm:?}"
        );
        assert!(!norm.iter().any(|a| a.contains("incremental")), "{norm:?}");
        assert!(
            norm.iter()
                .any(|a| a.starts_with("$CARGO_HOME/registry/src/")),
            "{norm:?}"
        );
    }

    #[test]
    fn only_registry_and_shim_crates_are_cacheable() {
        let mut cell = itoa_args("kernel-1", "opt-level=2", &[]);
        cell[4] = "src/lib.rs".into();
        assert!(!Invocation::parse(&cell, Vec::new())
            .unwrap()
            .cacheable(&roots()));
        let mut elsewhere = itoa_args("kernel-1", "opt-level=2", &[]);
        elsewhere[4] = "/home/a/project/src/lib.rs".into();
        assert!(!Invocation::parse(&elsewhere, Vec::new())
            .unwrap()
            .cacheable(&roots()));
        let mut shim = itoa_args("kernel-1", "opt-level=2", &[]);
        shim[4] = "/home/a/.cache/rustmeter/shims/tokio-1-full/lib.rs".into();
        assert!(Invocation::parse(&shim, Vec::new())
            .unwrap()
            .cacheable(&roots()));
        let mut script = itoa_args("kernel-1", "opt-level=2", &[]);
        script[2] = "build_script_build".into();
        assert!(!Invocation::parse(&script, Vec::new())
            .unwrap()
            .cacheable(&roots()));
        let probe: Vec<String> = ["rustc", "-", "--crate-name", "___", "--print=cfg"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(!Invocation::parse(&probe, Vec::new())
            .unwrap()
            .cacheable(&roots()));
    }

    #[test]
    fn env_is_filtered_and_out_dir_kept_apart() {
        let env = vec![
            ("CARGO_PKG_VERSION".to_string(), "1.0.19".to_string()),
            (
                "CARGO_MAKEFLAGS".to_string(),
                "-j --jobserver-fds=9,11".to_string(),
            ),
            ("OUT_DIR".to_string(), "/t/debug/build/x-1/out".to_string()),
            ("HOME".to_string(), "/home/a".to_string()),
        ];
        let inv = Invocation::parse(&itoa_args("kernel-1", "opt-level=2", &[]), env).unwrap();
        assert_eq!(inv.env, vec![("CARGO_PKG_VERSION".into(), "1.0.19".into())]);
        assert_eq!(
            inv.build_out_dir,
            Some(PathBuf::from("/t/debug/build/x-1/out"))
        );
    }
}
