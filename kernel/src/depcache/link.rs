//! Times the link of the crates the wrapper passes through (the cell crate): the wrapper
//! names this executable as rustc's linker, and `rustmeter` run that way runs the real
//! linker and writes a `link` build event with how long it took. That splits a cell's
//! compile time into rustc's own work and the link (see `server::progress`).
//!
//! Owns the argument rewrite and the linker mode; must not change what is linked: the
//! real linker gets the same arguments, environment (minus our two variables) and exit
//! code, and anything we cannot rewrite safely is left untimed.

use super::record::Events;
use crate::settings;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Set by the wrapper for the rustc it runs: this executable is then that rustc's linker,
/// and the value is the real linker.
const LINK_AS: &str = settings::LINK_AS.name;
/// The crate being linked, for the event.
const LINK_CRATE: &str = settings::LINK_CRATE.name;

/// This process was started by rustc as the linker of a timed link.
pub fn is_link_invocation() -> bool {
    settings::text(&settings::LINK_AS).is_some()
}

/// Linker mode: runs the real linker with `args`; returns its exit code.
pub fn run(args: &[String]) -> i32 {
    let real = settings::text(&settings::LINK_AS).unwrap_or_else(|| "cc".into());
    let crate_name = settings::text(&settings::LINK_CRATE).unwrap_or_else(|| "?".into());
    let started = Instant::now();
    let status = Command::new(&real)
        .args(args)
        .env_remove(LINK_AS)
        .env_remove(LINK_CRATE)
        .status();
    Events::from_env().link(&crate_name, started.elapsed().as_millis());
    match status {
        Ok(s) => s.code().unwrap_or(1),
        Err(e) => {
            // rustc shows the linker's stderr with its own "linking failed" error.
            let _ = writeln!(
                std::io::stderr(),
                "rustmeter: cannot run linker {real}: {e}"
            );
            1
        }
    }
}

/// rustc's arguments, and the variables to add to its environment.
pub type TimedLink = (Vec<String>, Vec<(String, String)>);

/// The rustc arguments and environment that time this invocation's link, or `None` to
/// leave it as it is: it links no shared library, this executable is unknown, or its
/// linker is not a C compiler driver (rustc infers a linker's flavor from its file name,
/// which naming ourselves would change).
pub fn timed(args: &[String], crate_name: &str, exe: &Path) -> Option<TimedLink> {
    let links_shared = args
        .windows(2)
        .any(|w| w[0] == "--crate-type" && (w[1] == "dylib" || w[1] == "cdylib"));
    if !links_shared {
        return None;
    }
    let mut kept = Vec::with_capacity(args.len() + 2);
    let mut linker = "cc".to_string();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(v) = a.strip_prefix("-Clinker=") {
            linker = v.to_string();
        } else if (a == "-C" || a == "--codegen")
            && args.get(i + 1).is_some_and(|n| n.starts_with("linker="))
        {
            linker = args[i + 1]["linker=".len()..].to_string();
            i += 1;
        } else if a.contains("linker=") && !a.contains("linker-") {
            // A spelling we do not parse (`--codegen=linker=…`): do not touch it.
            return None;
        } else {
            kept.push(a.clone());
        }
        i += 1;
    }
    if !is_cc_driver(&linker) {
        return None;
    }
    kept.push(format!("-Clinker={}", exe.to_str()?));
    let env = vec![
        (LINK_AS.to_string(), linker),
        (LINK_CRATE.to_string(), crate_name.to_string()),
    ];
    Some((kept, env))
}

fn is_cc_driver(linker: &str) -> bool {
    let name = Path::new(linker)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    matches!(name, "cc" | "gcc" | "clang" | "c++" | "g++" | "clang++")
        || name.ends_with("-gcc")
        || name.ends_with("-cc")
        || name.ends_with("-clang")
        || name.starts_with("gcc-")
        || name.starts_with("clang-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn only_shared_libraries_with_a_cc_linker_are_timed() {
        let exe = Path::new("/opt/rustmeter");
        let (a, env) = timed(
            &args("--crate-name ctx --crate-type dylib src/lib.rs"),
            "ctx",
            exe,
        )
        .expect("default linker cc");
        assert_eq!(a.last().unwrap(), "-Clinker=/opt/rustmeter");
        assert_eq!(env[0], (LINK_AS.into(), "cc".into()));

        let (a, env) = timed(
            &args("--crate-type cdylib -C linker=/usr/bin/clang -C opt-level=0"),
            "ctx",
            exe,
        )
        .expect("clang is a driver");
        assert_eq!(env[0].1, "/usr/bin/clang");
        assert!(!a.iter().any(|x| x.contains("clang")), "{a:?}");
        assert!(a.contains(&"opt-level=0".to_string()));

        assert!(timed(&args("--crate-type lib src/lib.rs"), "x", exe).is_none());
        assert!(timed(&args("--crate-type dylib -Clinker=rust-lld"), "x", exe).is_none());
        assert!(timed(&args("--crate-type dylib --codegen=linker=cc"), "x", exe).is_none());
        // linker-flavor and link-arg are kept as they are.
        let (a, _) = timed(
            &args("--crate-type dylib -Clink-arg=-fuse-ld=lld -C linker-flavor=gcc"),
            "x",
            exe,
        )
        .unwrap();
        assert!(a.contains(&"-Clink-arg=-fuse-ld=lld".to_string()));
        assert!(a.contains(&"linker-flavor=gcc".to_string()));
    }
}
