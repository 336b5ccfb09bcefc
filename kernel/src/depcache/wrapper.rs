//! The rustc wrapper: `rustmeter <rustc> <args…>`, run by cargo because the engine sets
//! `RUSTC_WRAPPER` (and [`super::WRAPPER_MARKER`]) in evcxr's build environment.
//!
//! Owns one invocation: pass it through, or look it up, restore it or compile and
//! publish it. Must not fail a build for a cache reason: every cache error becomes a
//! line in the hit record and a plain rustc run. Prints nothing of its own; on stderr
//! only rustc's (or the replayed) output, which cargo parses.

use super::key::{Invocation, Replacer, Roots};
use super::record::{hit_record, Events};
use super::store::{Loaded, Lookup, Manifest, Tier};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs the wrapper for `args` = `[rustc, rustc-args…]`; returns rustc's exit code.
pub fn run(args: &[String]) -> i32 {
    let Some(mut inv) = Invocation::parse(args, std::env::vars()) else {
        return 101;
    };
    inv.enable_tokio_task_hooks();
    let Some(label) = inv.crate_label().map(str::to_string) else {
        // cargo's probes (`-vV`, `--print cfg`): become rustc.
        let error = Command::new(&inv.rustc).args(&inv.args).exec();
        let _ = writeln!(
            std::io::stderr(),
            "rustmeter: cannot run {}: {error}",
            inv.rustc.display()
        );
        return 101;
    };
    let events = Events::from_env();
    events.start(&label);
    let started = Instant::now();
    let roots = Roots::from_env();
    let (code, outcome) = if super::enabled() && inv.cacheable(&roots) {
        cached(&inv, &roots, &label)
    } else {
        let (inv, link_env) = timed_link(inv, &label);
        let (code, stderr) = run_rustc(&inv, &link_env);
        if label == super::CELL_CRATE {
            keep_cell_warnings(code, &stderr, &events);
        }
        (code, "pass")
    };
    events.end(&label, outcome, started.elapsed().as_millis());
    code
}

/// The warnings of a cell crate build that succeeded, for the kernel to show (a failed
/// build's errors reach it through evcxr). Every build of the cell replaces the file.
fn keep_cell_warnings(code: i32, stderr: &str, events: &Events) {
    let Some(file) = events.path().map(super::cell_warnings_file) else {
        return;
    };
    let warnings: String = stderr
        .lines()
        .filter(|line| code == 0 && line.starts_with('{') && line.contains("\"level\":\"warning\""))
        .map(|line| format!("{line}\n"))
        .collect();
    // Into the kernel's work folder only while it exists (a build may end as the kernel stops).
    let _ = crate::workdir::replace_file(&file, &warnings);
}

/// `inv` with this executable as its linker, so the link is timed (`super::link`), and
/// the environment that tells it which linker to run.
fn timed_link(mut inv: Invocation, label: &str) -> (Invocation, Vec<(String, String)>) {
    let exe = std::env::current_exe().ok();
    match exe.and_then(|exe| super::link::timed(&inv.args, label, &exe)) {
        Some((args, env)) => {
            inv.args = args;
            (inv, env)
        }
        None => (inv, Vec::new()),
    }
}

fn cached(inv: &Invocation, roots: &Roots, label: &str) -> (i32, &'static str) {
    let tiers = super::Tiers::from_env();
    let record = |key: &str, outcome: &str, since: Instant, detail: &str| {
        hit_record(
            &tiers.write.root,
            label,
            key,
            outcome,
            since.elapsed().as_millis(),
            detail,
        )
    };
    let t0 = Instant::now();
    let key = match super::rustc_version(&inv.rustc, &tiers.write).and_then(|v| inv.key(roots, &v))
    {
        Ok(key) => key,
        Err(e) => {
            record("-", "error", t0, &format!("key: {e}"));
            return (run_rustc(inv, &[]).0, "miss");
        }
    };
    for tier in &tiers.lookup {
        let t0 = Instant::now();
        let tier_name = tier.root.display().to_string();
        match tier.lookup(&key) {
            Lookup::Miss => {}
            Lookup::Corrupt(reason) => {
                record(&key, "corrupt", t0, &format!("{tier_name}: {reason}"))
            }
            Lookup::Hit(loaded) => match restore(inv, roots, &loaded) {
                Ok(()) => {
                    tier.touch(&key);
                    record(&key, "hit", t0, &tier_name);
                    return (0, "hit");
                }
                Err(Restore::EnvDiffers(name)) => {
                    record(&key, "miss", t0, &format!("{tier_name}: {name} differs"))
                }
                Err(Restore::Io(e)) => {
                    record(&key, "corrupt", t0, &format!("{tier_name}: restore: {e}"))
                }
            },
        }
    }
    let t0 = Instant::now();
    let (code, stderr) = run_rustc(inv, &[]);
    record(&key, "miss", t0, "");
    if code == 0 {
        let t1 = Instant::now();
        match publish(inv, roots, &tiers.write, &key, stderr) {
            Ok(true) => {
                record(&key, "stored", t1, "");
                tiers.write.evict(super::store::max_bytes_from_env());
            }
            Ok(false) => record(&key, "store-lost", t1, ""),
            Err(e) => record(&key, "error", t1, &format!("publish: {e}")),
        }
    }
    (code, "miss")
}

/// Runs the real rustc with `env` added, copying its stderr through line by line as it
/// comes (cargo reads artifact notifications from it while rustc still works) and
/// keeping a copy.
fn run_rustc(inv: &Invocation, env: &[(String, String)]) -> (i32, String) {
    let child = Command::new(&inv.rustc)
        .args(&inv.args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "rustmeter: cannot run {}: {e}",
                inv.rustc.display()
            );
            return (101, String::new());
        }
    };
    let mut kept = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        let out = std::io::stderr();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let _ = out.lock().write_all(&line);
            kept.extend_from_slice(&line);
            line.clear();
        }
    }
    let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(101);
    (code, String::from_utf8_lossy(&kept).into_owned())
}

enum Restore {
    /// A variable the crate read while compiling has another value now: not our build.
    EnvDiffers(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for Restore {
    fn from(e: std::io::Error) -> Self {
        Restore::Io(e)
    }
}

/// Rewrites the stored compile's folders to this one's.
fn path_rewriter(inv: &Invocation, roots: &Roots, m: &Manifest) -> Replacer {
    let s = |p: &Path| p.to_string_lossy().trim_end_matches('/').to_string();
    let mut pairs = vec![
        (m.cargo_home.clone(), s(&roots.cargo_home)),
        (m.shims.clone(), s(&roots.shims)),
    ];
    if let Some(out) = &inv.out_dir {
        pairs.push((m.out_dir.clone(), s(out)));
    }
    if let (Some(old), Some(new)) = (&m.build_out_dir, &inv.build_out_dir) {
        pairs.push((old.clone(), s(new)));
    }
    pairs.retain(|(a, b)| a != b);
    Replacer::new(pairs)
}

fn restore(inv: &Invocation, roots: &Roots, loaded: &Loaded) -> Result<(), Restore> {
    let m = &loaded.manifest;
    let out_dir = inv
        .out_dir
        .as_ref()
        .ok_or_else(|| std::io::Error::other("no --out-dir"))?;
    let rewrite = path_rewriter(inv, roots, m);
    for line in &m.env_deps {
        let (name, stored) = match line.split_once('=') {
            Some((n, v)) => (n, Some(rewrite.apply(v))),
            None => (line.as_str(), None),
        };
        let current = std::env::var(name).ok().map(|v| escape_env(&v));
        if current != stored {
            return Err(Restore::EnvDiffers(name.to_string()));
        }
    }
    for (name, bytes) in &loaded.files {
        let dest = out_dir.join(name);
        // Never write into a file in place: the user-code process may have it mapped.
        let tmp = out_dir.join(format!(".{name}.rustmeter-{}", std::process::id()));
        let written = if name.ends_with(".d") {
            let text = String::from_utf8_lossy(bytes);
            std::fs::write(&tmp, rewrite.apply(&text))
        } else {
            std::fs::write(&tmp, bytes)
        };
        let moved = written.and_then(|()| {
            set_output_mode(name, &tmp)?;
            std::fs::rename(&tmp, &dest)
        });
        if let Err(e) = moved {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    }
    let _ = std::io::stderr().write_all(rewrite.apply(&m.stderr).as_bytes());
    Ok(())
}

/// Shared objects keep their executable bit.
fn set_output_mode(name: &str, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if name.ends_with(".so") { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// As rustc writes values in `# env-dep:` lines.
fn escape_env(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// Stores what rustc just wrote, when it is safe to: every output is in `--out-dir`,
/// and the dep-info names no source outside the registry, the shims and `OUT_DIR`.
fn publish(
    inv: &Invocation,
    roots: &Roots,
    tier: &Tier,
    key: &str,
    stderr: String,
) -> std::io::Result<bool> {
    let out_dir = inv
        .out_dir
        .clone()
        .ok_or_else(|| std::io::Error::other("no --out-dir"))?;
    let artifacts = artifacts(&stderr);
    if artifacts.is_empty()
        || artifacts
            .iter()
            .any(|a| a.parent() != Some(out_dir.as_path()))
    {
        return Err(std::io::Error::other(
            "outputs outside --out-dir, or none reported",
        ));
    }
    let mut env_deps = Vec::new();
    for dep_info in artifacts
        .iter()
        .filter(|a| a.extension().is_some_and(|e| e == "d"))
    {
        let text = std::fs::read_to_string(dep_info)?;
        for line in text.lines() {
            if let Some(dep) = line.strip_prefix("# env-dep:") {
                env_deps.push(dep.to_string());
            } else if !line.starts_with('#') {
                for source in dep_info_sources(line) {
                    let allowed = [
                        Some(roots.registry_src()),
                        Some(roots.shims.clone()),
                        inv.build_out_dir.clone(),
                    ];
                    if !allowed
                        .iter()
                        .flatten()
                        .any(|root| source.starts_with(root))
                    {
                        return Err(std::io::Error::other(format!("reads {}", source.display())));
                    }
                }
            }
        }
    }
    let s = |p: &Path| p.to_string_lossy().trim_end_matches('/').to_string();
    let manifest = Manifest {
        crate_name: inv.crate_name.clone().unwrap_or_default(),
        out_dir: s(&out_dir),
        build_out_dir: inv.build_out_dir.as_deref().map(s),
        cargo_home: s(&roots.cargo_home),
        shims: s(&roots.shims),
        files: Vec::new(),
        stderr,
        env_deps,
        features: inv
            .args
            .windows(2)
            .filter(|w| w[0] == "--cfg")
            .filter_map(|w| w[1].strip_prefix("feature=\"")?.strip_suffix('"'))
            .map(str::to_string)
            .collect(),
    };
    super::store::create_dirs(&tier.root)?;
    tier.publish(key, &manifest, &artifacts)
}

/// Files rustc reported writing (`{"$message_type":"artifact","artifact":PATH,…}`).
fn artifacts(stderr: &str) -> Vec<PathBuf> {
    stderr
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"artifact\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["$message_type"] == "artifact")
        .filter_map(|v| v["artifact"].as_str().map(PathBuf::from))
        .collect()
}

/// The prerequisites of one make-style dep-info line `target: dep dep\ with\ space`.
fn dep_info_sources(line: &str) -> Vec<PathBuf> {
    let Some((_, deps)) = line.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(PathBuf::from(current));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_lines_split_on_unescaped_spaces() {
        assert_eq!(
            dep_info_sources("/o/x.d: /r/a\\ b.rs /r/c.rs"),
            vec![PathBuf::from("/r/a b.rs"), PathBuf::from("/r/c.rs")]
        );
        assert!(dep_info_sources("/r/c.rs:").is_empty());
    }

    #[test]
    fn artifacts_come_from_notifications() {
        let stderr = "{\"$message_type\":\"artifact\",\"artifact\":\"/o/libx.rmeta\",\"emit\":\"metadata\"}\n\
                      {\"$message_type\":\"diagnostic\",\"message\":\"artifact\"}\n";
        assert_eq!(artifacts(stderr), vec![PathBuf::from("/o/libx.rmeta")]);
    }
}
