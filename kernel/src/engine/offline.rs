//! `:dep` when cargo works offline (`CARGO_NET_OFFLINE=true`, as a class install sets):
//! a crate that was never downloaded to this machine is refused at once, naming offline
//! mode and the crates that are available, instead of cargo's resolver error seconds
//! later. Reads the environment and the registry's downloaded `.crate` files; runs nothing.
//! Must not decide anything about crates cargo can reach (online, `path`, `git`).

use crate::commands::{Cell, Command, EngineCommand, LineKind};
use std::collections::BTreeSet;
use std::path::Path;

/// The refusal for the first `:dep` in `cell` that offline cargo cannot satisfy, if any.
pub fn refusal(cell: &Cell) -> Option<String> {
    let deps: Vec<&str> = cell
        .lines
        .iter()
        .filter_map(|line| match &line.kind {
            LineKind::Command(Command::Engine(EngineCommand::Dep(args))) => Some(args.as_str()),
            _ => None,
        })
        .collect();
    if deps.is_empty() || !offline() {
        return None;
    }
    // Where cargo keeps downloads, as the dependency cache's wrapper finds it.
    let cargo_home = crate::depcache::key::Roots::from_env().cargo_home;
    let registry = cargo_home.join("registry").join("cache");
    let downloaded = downloaded_crates(&registry);
    // No downloaded crate at all: the crates come from elsewhere (vendored sources, a
    // local registry), which only cargo can judge.
    if downloaded.is_empty() {
        return None;
    }
    deps.iter()
        .find_map(|args| unavailable(args, &downloaded))
        .map(|name| message(&name, &downloaded))
}

/// cargo's own switch, as cargo reads it.
fn offline() -> bool {
    std::env::var("CARGO_NET_OFFLINE").is_ok_and(|v| matches!(v.trim(), "true" | "1"))
}

/// The crate a `:dep NAME [= SPEC]` line names when it is a registry crate that was never
/// downloaded; `None` for available crates and for `path`/`git` dependencies.
fn unavailable(args: &str, downloaded: &BTreeSet<String>) -> Option<String> {
    let (name, spec) = args
        .split_once('=')
        .map_or((args.trim(), ""), |(n, s)| (n.trim(), s.trim()));
    // Shared crates (tokio, rayon) are rustmeter's own shims over prewarmed crates;
    // another registry is cargo's to judge.
    if name.is_empty()
        || spec.contains("path")
        || spec.contains("git")
        || spec.contains("registry")
        || super::shims::find(name).is_some()
    {
        return None;
    }
    // `alias = { package = "real-name", ... }` depends on real-name.
    let package = package_of(spec).unwrap_or(name);
    // crates.io treats `-` and `_` in names as the same crate.
    let wanted = package.replace('_', "-");
    (!downloaded.contains(&wanted)).then(|| package.to_string())
}

/// The `package = "NAME"` of an inline-table spec.
fn package_of(spec: &str) -> Option<&str> {
    let after = spec.split_once("package")?.1.trim_start();
    let quoted = after.strip_prefix('=')?.trim_start().strip_prefix('"')?;
    quoted.split_once('"').map(|(name, _)| name.trim())
}

/// Names (with `-` for `_`) of the crates whose `.crate` file cargo downloaded into
/// `<CARGO_HOME>/registry/cache/<index>/NAME-VERSION.crate`.
fn downloaded_crates(cache: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for index in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let file_name = file.file_name();
            if let Some(name) = file_name.to_str().and_then(crate_name) {
                names.insert(name.replace('_', "-"));
            }
        }
    }
    names
}

/// `tokio-stream-0.1.17.crate` → `tokio-stream`: the name ends at the `-` that starts a
/// `MAJOR.MINOR.PATCH` version.
fn crate_name(file: &str) -> Option<&str> {
    let stem = file.strip_suffix(".crate")?;
    stem.match_indices('-').find_map(|(at, _)| {
        let version = &stem[at + 1..];
        let parts: Vec<&str> = version.splitn(3, '.').collect();
        let number = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
        let patch = |p: &str| p.chars().next().is_some_and(|c| c.is_ascii_digit());
        (parts.len() == 3 && number(parts[0]) && number(parts[1]) && patch(parts[2]))
            .then(|| &stem[..at])
    })
}

fn message(name: &str, downloaded: &BTreeSet<String>) -> String {
    let available = if downloaded.is_empty() {
        "none: this machine has no downloaded crates".to_string()
    } else {
        downloaded.iter().cloned().collect::<Vec<_>>().join(", ")
    };
    format!(
        ":dep {name}: cargo works offline here (CARGO_NET_OFFLINE=true, a class install's \
         offline mode), and {name} was never downloaded to this machine, so it cannot be \
         added. Crates available offline: {available}. Ask your instructor to add {name} to \
         the class's prewarm, or use one of these."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_end_where_the_version_starts() {
        assert_eq!(
            crate_name("tokio-stream-0.1.17.crate"),
            Some("tokio-stream")
        );
        assert_eq!(crate_name("tokio-1.54.1.crate"), Some("tokio"));
        assert_eq!(
            crate_name("windows_x86_64_gnu-0.52.6.crate"),
            Some("windows_x86_64_gnu")
        );
        assert_eq!(crate_name("utf-8-0.7.6.crate"), Some("utf-8"));
        assert_eq!(crate_name("syn-2.0.0-rc.1.crate"), Some("syn"));
        assert_eq!(crate_name("README.md"), None);
    }

    #[test]
    fn only_registry_crates_never_downloaded_are_refused() {
        let downloaded: BTreeSet<String> = ["tokio-stream", "rayon"].map(String::from).into();
        assert_eq!(unavailable("tokio_stream", &downloaded), None);
        assert_eq!(unavailable(" rayon = \"1\"", &downloaded), None);
        assert_eq!(
            unavailable("rand = \"0.8\"", &downloaded),
            Some("rand".into())
        );
        assert_eq!(
            unavailable("mine = { path = \"../mine\" }", &downloaded),
            None
        );
        assert_eq!(
            unavailable("theirs = { git = \"https://x\" }", &downloaded),
            None
        );
        let renamed = "rc = { package = \"rayon\", version = \"1\" }";
        assert_eq!(unavailable(renamed, &downloaded), None);
        let renamed = "r = { version = \"0.8\", package = \"rand\" }";
        assert_eq!(unavailable(renamed, &downloaded), Some("rand".into()));
    }
}
