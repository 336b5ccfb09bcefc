//! `rustmeter doctor`: a pre-class check of one machine, printed as ✓ / ! / ✗ lines —
//! toolchain and std sources, the kernelspec in use, the `RUSTMETER_*` settings a kernel
//! would see (bad values, and those set), limits against what the tutorials need, RAM and
//! cores, the linker, warm spare kernels.
//!
//! Read-only: it inspects and reports, and never installs or changes anything.

use crate::settings::{self, Setting};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    /// Works, but not as well as it could.
    Warn,
    Bad,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub verdict: Verdict,
    pub what: String,
    /// What to do about it (empty when good).
    pub fix: String,
}

fn finding(verdict: Verdict, what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        verdict,
        what: what.into(),
        fix: fix.into(),
    }
}

/// The tutorials open 1,000 connections at once (notebook 4) and start 10,000 threads
/// (notebook 3, which adapts N when limits are lower).
pub const FILES_NEEDED: u64 = 1_100;
/// Notebook 11's largest crowd: 10,000 connections, two open files each (client and
/// server in one process), and the process's own.
pub const FILES_FOR_THE_BIG_CROWD: u64 = 20_200;
pub const THREADS_NEEDED: u64 = 10_100;

/// Runs every check.
pub fn examine() -> Vec<Finding> {
    let mut out = vec![toolchain(), std_sources()];
    out.extend(kernelspecs());
    out.push(settings_finding());
    out.push(folders());
    out.push(open_files());
    out.push(threads());
    out.push(memory_and_cores());
    out.push(linker());
    out.push(dependency_cache());
    out.push(limits());
    out.push(spares());
    out.push(orphans());
    out
}

/// The runtime and cache folders, and any configured folder refused as unsafe.
fn folders() -> Finding {
    if let Some(why) = crate::workdir::none_safe() {
        return finding(
            Verdict::Bad,
            format!("folders cells build in: {why}"),
            "kernels do not start until one is safe",
        );
    }
    let (runtime, cache) = (crate::workdir::base_dir(), crate::workdir::cache_dir());
    let refused = crate::workdir::refused_folders();
    let what = format!(
        "folders cells build in: kernels in {}, caches in {} (no other account can write in them or above them)",
        runtime.display(),
        cache.display()
    );
    if refused.is_empty() {
        return finding(Verdict::Good, what, "");
    }
    finding(
        Verdict::Warn,
        format!("{what}; refused: {}", refused.join("; ")),
        "point RUSTMETER_RUNTIME_DIR / RUSTMETER_CACHE_DIR at folders only you (or root) can write in, or unset them",
    )
}

/// Kernels whose launcher is gone, and processes cells started whose kernel is gone.
fn orphans() -> Finding {
    use crate::launcher::OrphanKind;
    // A bad value of the switch is in the settings finding; the kernel then watches.
    let watch = if crate::launcher::watch_enabled() {
        "kernels end with the process that launched them".to_string()
    } else {
        format!(
            "kernels keep running after their launcher exits ({}=off)",
            crate::launcher::WATCH_VARIABLE
        )
    };
    let found = crate::launcher::orphans();
    if found.is_empty() {
        return finding(Verdict::Good, format!("{watch}; none left running"), "");
    }
    let lines: Vec<String> = found
        .iter()
        .map(|o| match o.kind {
            OrphanKind::Kernel { launcher } => format!(
                "kernel pid {} (its launcher {launcher} is gone): {}",
                o.pid, o.command
            ),
            OrphanKind::CellProcess { kernel } => format!(
                "pid {} started by a cell of kernel {kernel}, which is gone: {}",
                o.pid, o.command
            ),
        })
        .collect();
    finding(
        Verdict::Warn,
        format!(
            "{watch}; {} process(es) left by launches that are gone:\n    {}",
            found.len(),
            lines.join("\n    ")
        ),
        "stop them with kill PID (the next kernel started stops cell processes by itself)",
    )
}

fn spares() -> Finding {
    if !crate::spare::enabled() {
        return finding(
            Verdict::Good,
            format!(
                "warm spare kernels: off here ({}={}); each launch starts its own kernel",
                settings::SPARE.name,
                settings::text(&settings::SPARE).unwrap_or_default()
            ),
            "",
        );
    }
    let waiting = crate::spare::waiting();
    let mb: Vec<String> = waiting
        .iter()
        .map(|(pid, rss)| format!("pid {pid}: {} MB", rss / 1_000_000))
        .collect();
    finding(
        Verdict::Good,
        format!(
            "warm spare kernels: on; {} waiting{} (each launch keeps one warmed-up kernel, \
             about 0.5 GB, for the next launch with the same folder and settings)",
            waiting.len(),
            if mb.is_empty() {
                String::new()
            } else {
                format!(" ({})", mb.join(", "))
            }
        ),
        "",
    )
}

/// The report as text (green/yellow/red marks with `color`), and whether nothing was bad.
pub fn report(findings: &[Finding], color: bool) -> (String, bool) {
    let mut text = String::new();
    for f in findings {
        let (mark, code) = match f.verdict {
            Verdict::Good => ("✓", 32),
            Verdict::Warn => ("!", 33),
            Verdict::Bad => ("✗", 31),
        };
        let mark = if color {
            format!("\u{1b}[{code}m{mark}\u{1b}[0m")
        } else {
            mark.to_string()
        };
        text.push_str(&format!("{mark} {}\n", f.what));
        if !f.fix.is_empty() {
            text.push_str(&format!("    → {}\n", f.fix));
        }
    }
    let ok = findings.iter().all(|f| f.verdict != Verdict::Bad);
    (text, ok)
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn toolchain() -> Finding {
    match output("rustc", &["--version"]) {
        Some(version) => finding(Verdict::Good, format!("Rust toolchain: {version}"), ""),
        None => finding(
            Verdict::Bad,
            "Rust toolchain: `rustc` not found on PATH",
            "install Rust (https://rustup.rs) and make sure the kernel's PATH has it",
        ),
    }
}

/// Where rust-analyzer looks for the standard library's sources.
pub fn std_sources_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RUST_SRC_PATH") {
        return Some(PathBuf::from(path));
    }
    let sysroot = output("rustc", &["--print", "sysroot"])?;
    Some(Path::new(&sysroot).join("lib/rustlib/src/rust/library"))
}

fn std_sources() -> Finding {
    match std_sources_path() {
        Some(path) if path.join("std").is_dir() => finding(
            Verdict::Good,
            format!("std sources for completion: {}", path.display()),
            "",
        ),
        Some(path) => finding(
            Verdict::Warn,
            format!("std sources missing at {}: completion and inspection of std items are limited", path.display()),
            "rustup component add rust-src (or Debian: apt install rust-src, then ./install.sh --rust-src PATH)",
        ),
        None => finding(Verdict::Warn, "std sources: could not ask rustc for its sysroot", "rustup component add rust-src"),
    }
}

/// Every `rustmeter` kernelspec file Jupyter would find.
fn kernelspec_files() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("JUPYTER_PATH") {
        dirs.extend(std::env::split_paths(&path).map(|p| p.join("kernels")));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/share/jupyter/kernels"));
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        dirs.push(Path::new(&venv).join("share/jupyter/kernels"));
    }
    if let Ok(exe) = std::env::current_exe() {
        // The project's own venv, for a binary inside the repository's target dir.
        if let Some(repo) = exe.ancestors().nth(3) {
            dirs.push(repo.join(".venv/share/jupyter/kernels"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/share/jupyter/kernels"));
    dirs.push(PathBuf::from("/usr/share/jupyter/kernels"));
    dirs.into_iter()
        .map(|dir| dir.join("rustmeter").join("kernel.json"))
        .filter(|spec| spec.is_file())
        .collect()
}

/// Every `rustmeter` kernelspec Jupyter would find, with the binary it runs.
fn kernelspecs() -> Vec<Finding> {
    let mut found = Vec::new();
    for spec in kernelspec_files() {
        let Ok(text) = std::fs::read_to_string(&spec) else {
            continue;
        };
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let binary = parsed["argv"][0].as_str().unwrap_or("?").to_string();
        let exists = Path::new(&binary).is_file();
        let env = parsed["env"]
            .as_object()
            .map(|e| e.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        found.push(finding(
            if exists { Verdict::Good } else { Verdict::Bad },
            format!(
                "kernelspec {} → {binary}{}",
                spec.display(),
                if env.is_empty() {
                    String::new()
                } else {
                    format!(" (env: {env})")
                }
            ),
            if exists {
                ""
            } else {
                "the binary it names is gone: run ./install.sh again"
            },
        ));
    }
    if found.is_empty() {
        found.push(finding(
            Verdict::Bad,
            "no `rustmeter` kernelspec found",
            "./install.sh registers it (--user, --sys-prefix or --prefix)",
        ));
    }
    found
}

/// A setting as the kernel will see it: this shell's environment, else the first
/// kernelspec that sets it; with where it comes from.
fn kernel_setting_from(setting: &Setting) -> Option<(String, String)> {
    if let Some(value) = settings::written_in(setting, &settings::process_env) {
        return Some((value.to_string_lossy().into_owned(), "environment".into()));
    }
    kernelspec_files().into_iter().find_map(|spec| {
        let text = std::fs::read_to_string(&spec).ok()?;
        let parsed: serde_json::Value = serde_json::from_str(&text).ok()?;
        let value = parsed["env"][setting.name].as_str()?;
        Some((value.to_string(), format!("kernelspec {}", spec.display())))
    })
}

/// A setting as the kernel will see it (see [`kernel_setting_from`]).
fn kernel_setting(setting: &Setting) -> Option<String> {
    kernel_setting_from(setting).map(|(value, _)| value)
}

/// Every `RUSTMETER_*` setting a kernel would see: those with a bad value (each named
/// with what is accepted and what the kernel does about it), and those set.
fn settings_finding() -> Finding {
    let lookup = |name: &str| {
        settings::find(name)
            .and_then(kernel_setting)
            .map(OsString::from)
    };
    let bad = settings::problems_in(&lookup);
    let set: Vec<String> = settings::set_in(&lookup)
        .into_iter()
        .map(|(setting, value)| {
            let source = kernel_setting_from(setting)
                .map(|(_, s)| s)
                .unwrap_or_default();
            format!("{}={value} ({source})", setting.name)
        })
        .collect();
    let set_text = if set.is_empty() {
        "none set, all defaults".to_string()
    } else {
        format!("set:\n    {}", set.join("\n    "))
    };
    if bad.is_empty() {
        return finding(Verdict::Good, format!("settings: {set_text}"), "");
    }
    let lines: Vec<String> = bad.iter().map(|e| e.report()).collect();
    finding(
        Verdict::Bad,
        format!(
            "settings: {} bad value(s):\n    {}\n  {set_text}",
            bad.len(),
            lines.join("\n    ")
        ),
        "fix or unset them (README, section Settings, lists what each accepts)",
    )
}

/// Memory and thread caps (`crate::limits`): valid, and could a kernel make its cgroups?
/// Checked without creating any.
fn limits() -> Finding {
    use crate::limits::{Limits, Mode, MEMORY_VARIABLE, THREAD_VARIABLE};
    let memory = kernel_setting(&settings::MEMORY_LIMIT).unwrap_or_default();
    let threads = kernel_setting(&settings::THREAD_LIMIT).unwrap_or_default();
    let parent = kernel_setting(&settings::CGROUP_PARENT);
    let checked = Limits::set_up(
        &memory,
        &threads,
        parent.as_deref(),
        &format!("rustmeter-{}", std::process::id()),
        Mode::Check,
    );
    let text = format!("limits: {}", checked.describe().replace('\n', "\n    "));
    if checked.has_invalid_setting() {
        finding(
            Verdict::Bad,
            text,
            format!("fix the value of {MEMORY_VARIABLE} / {THREAD_VARIABLE} (e.g. 2G, 1000)"),
        )
    } else if !checked.problems().is_empty() {
        finding(
            Verdict::Warn,
            text,
            "until this is fixed, one learner's cell can use all the memory and threads of \
             this machine",
        )
    } else {
        finding(Verdict::Good, text, "")
    }
}

/// The tutorials' canonical dependency line, `:dep tokio = { version = "1", features =
/// ["full"] }`: is tokio already in a cache tier the kernel reads (the shared tier from
/// the environment or a kernelspec, then the user tier)? Reads manifests only.
fn dependency_cache() -> Finding {
    use crate::depcache::store::Tier;
    let what = "dependency cache warm for the tutorials' `:dep tokio` (tokio 1, features full)";
    let fix = "run `rustmeter prewarm` (about a minute, once); for every user of this machine: \
               `rustmeter prewarm --cache /opt/rustmeter/cache` as admin, then \
               ./install.sh --shared-cache /opt/rustmeter/cache";
    if !crate::depcache::enabled() {
        let name = settings::DEP_CACHE.name;
        let value = settings::text(&settings::DEP_CACHE).unwrap_or_default();
        return finding(
            Verdict::Warn,
            format!("{what}: no, {name}={value} turns the cache off"),
            format!("unset {name}"),
        );
    }
    let mut tiers = crate::depcache::Tiers::from_env().lookup;
    // The kernel's shared tier may be set only in its kernelspec.
    for spec in kernelspec_files() {
        let parsed: serde_json::Value = std::fs::read_to_string(&spec)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if let Some(dir) = parsed["env"][settings::SHARED_CACHE.name]
            .as_str()
            .filter(|d| !d.is_empty())
        {
            if !tiers.iter().any(|t| t.root == Path::new(dir)) {
                tiers.insert(
                    0,
                    Tier {
                        root: PathBuf::from(dir),
                        shared: true,
                    },
                );
            }
        }
    }
    let mut partial = None;
    for tier in &tiers {
        let entries = tier.entries_of("tokio");
        let kind = if tier.shared {
            "shared tier"
        } else {
            "user tier"
        };
        if let Some(m) = entries
            .iter()
            .find(|m| m.features.iter().any(|f| f == "full"))
        {
            return finding(
                Verdict::Good,
                format!(
                    "{what}: yes, {kind} {} (tokio, features {})",
                    tier.root.display(),
                    m.features.join(",")
                ),
                "",
            );
        }
        if entries.iter().any(|m| m.features.is_empty()) {
            return finding(
                Verdict::Good,
                format!(
                    "{what}: yes, {kind} {} (a tokio entry written before features were recorded)",
                    tier.root.display()
                ),
                "",
            );
        }
        if !entries.is_empty() && partial.is_none() {
            partial = Some(format!(
                "{kind} {} has tokio, but not with features full",
                tier.root.display()
            ));
        }
    }
    let searched: Vec<String> = tiers.iter().map(|t| t.root.display().to_string()).collect();
    let detail = partial.unwrap_or_else(|| format!("no tokio entry in {}", searched.join(" or ")));
    finding(
        Verdict::Warn,
        format!("{what}: no, {detail}; the first `:dep tokio` of a notebook compiles it (about a minute)"),
        fix,
    )
}

/// Soft and hard limit of one resource of this process.
fn limit(resource: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    unsafe { libc::getrlimit(resource, &mut l) };
    (l.rlim_cur, l.rlim_max)
}

fn shown(n: u64) -> String {
    if n == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        n.to_string()
    }
}

fn open_files() -> Finding {
    // The process that runs cells raises its soft limit to the hard one
    // (`sys::raise_open_files_limit`), so the hard limit is what the tutorials get.
    let (soft, hard) = limit(libc::RLIMIT_NOFILE);
    let text = format!(
        "open files (ulimit -n): {} (hard {})",
        shown(soft),
        shown(hard)
    );
    if hard >= FILES_FOR_THE_BIG_CROWD {
        finding(Verdict::Good, text, "")
    } else if hard >= FILES_NEEDED {
        finding(
            Verdict::Warn,
            text,
            format!("notebook 11 needs {FILES_FOR_THE_BIG_CROWD} for its 10,000 clients and runs fewer: raise nofile's hard limit in /etc/security/limits.conf or the container's ulimits"),
        )
    } else {
        finding(Verdict::Bad, text, format!("the hard limit is below {FILES_NEEDED}: raise nofile in /etc/security/limits.conf or the container's ulimits"))
    }
}

fn threads() -> Finding {
    let (nproc, _) = limit(libc::RLIMIT_NPROC);
    let max = crate::sys::kernel_setting("kernel/threads-max").unwrap_or(u64::MAX);
    let pids = crate::sys::kernel_setting("kernel/pid_max").unwrap_or(u64::MAX);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/pids.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let root = unsafe { libc::geteuid() } == 0;
    let user_cap = if root { u64::MAX } else { nproc };
    let cap = [user_cap, max, pids, cgroup.unwrap_or(u64::MAX)]
        .into_iter()
        .min()
        .unwrap_or(u64::MAX);
    let text = format!(
        "threads: ulimit -u {}{}, threads-max {}, pid_max {}{}",
        shown(nproc),
        if root { " (ignored for root)" } else { "" },
        shown(max),
        shown(pids),
        cgroup
            .map(|c| format!(", cgroup pids.max {c}"))
            .unwrap_or_default()
    );
    if cap >= THREADS_NEEDED {
        finding(Verdict::Good, text, "")
    } else {
        finding(
            Verdict::Warn,
            text,
            format!("notebook 3 starts {THREADS_NEEDED} threads; here it will adapt to about {cap} (fine, but the numbers differ from the guide)"),
        )
    }
}

fn memory_and_cores() -> Finding {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kib = |field: &str| crate::sys::meminfo_kib(field).unwrap_or(0);
    let (total, available) = (kib("MemTotal") / 1024, kib("MemAvailable") / 1024);
    let text = format!("{cores} cores, {total} MB RAM ({available} MB available)");
    // One kernel: ~450 MB (rust-analyzer) + the cells' process + compiling (~1 GB peaks).
    if available >= 2048 && cores >= 2 {
        finding(Verdict::Good, text, "")
    } else {
        finding(
            Verdict::Warn,
            text,
            "a kernel needs ~1.5 GB while compiling and 2 cores for the parallelism lessons",
        )
    }
}

fn linker() -> Finding {
    let found = ["mold", "ld.lld"]
        .into_iter()
        .find(|l| output(l, &["--version"]).is_some());
    match found {
        Some(name) => finding(
            Verdict::Good,
            format!("fast linker: {name} (evcxr uses it)"),
            "",
        ),
        None => finding(
            Verdict::Warn,
            "no mold or lld: each cell links with the system linker (slower)",
            "apt install mold",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_marks_and_fails_only_on_bad() {
        let (text, ok) = report(
            &[
                finding(Verdict::Good, "fine", ""),
                finding(Verdict::Warn, "meh", "do this"),
            ],
            false,
        );
        assert!(ok);
        assert!(text.contains("✓") && text.contains("→ do this"));
        let (_, ok) = report(&[finding(Verdict::Bad, "broken", "fix")], false);
        assert!(!ok);
    }

    #[test]
    fn examines_this_machine() {
        let findings = examine();
        assert!(findings.iter().any(|f| f.what.contains("cores")));
        assert!(findings.iter().any(|f| f.what.starts_with("open files")));
        assert!(findings
            .iter()
            .any(|f| f.what.starts_with("dependency cache warm")));
        assert!(findings.iter().any(|f| f.what.starts_with("limits: ")));
        assert!(findings.iter().any(|f| f.what.starts_with("settings: ")));
    }
}
