//! The cgroups behind the limits: finding the memory and pids hierarchies (cgroup v1 or
//! v2) in `/proc/self/mountinfo`, choosing the parent directory, creating this kernel's
//! `rustmeter-<pid>` group, writing caps, reading the counters that tell whether a cap
//! was hit, and removing the group. Linux files only; knows nothing of evcxr or Jupyter.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A resource controller the limits need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }
}

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// True for the unified (v2) hierarchy.
    pub v2: bool,
    /// v1: the controllers bound to it; v2: those its root offers (`cgroup.controllers`).
    pub controllers: Vec<String>,
}

/// Every cgroup hierarchy mounted here, from mountinfo text.
pub fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        // `id parent major:minor root mountpoint options … - fstype source superoptions`
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount) = before.split(' ').nth(4) else {
            continue;
        };
        let mut after = after.split(' ');
        let (fstype, super_options) = (after.next(), after.nth(1).unwrap_or(""));
        let mount = PathBuf::from(mount.replace("\\040", " "));
        match fstype {
            Some("cgroup") => found.push(Hierarchy {
                mount,
                v2: false,
                controllers: super_options.split(',').map(str::to_string).collect(),
            }),
            Some("cgroup2") => {
                let controllers = std::fs::read_to_string(mount.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                found.push(Hierarchy {
                    mount,
                    v2: true,
                    controllers,
                })
            }
            _ => {}
        }
    }
    found
}

/// The hierarchy that carries `controller`: a v1 one when bound there (a controller is
/// in at most one hierarchy), else v2 when its root offers it.
pub fn hierarchy_for(all: &[Hierarchy], controller: Controller) -> Option<&Hierarchy> {
    let name = controller.name();
    all.iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == name))
        .or_else(|| {
            all.iter()
                .find(|h| h.v2 && h.controllers.iter().any(|c| c == name))
        })
}

/// This process's cgroup path in `hierarchy`, from `/proc/self/cgroup` text.
pub fn own_path(proc_self_cgroup: &str, hierarchy: &Hierarchy) -> Option<String> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if hierarchy.v2 {
            id == "0" && controllers.is_empty()
        } else {
            controllers
                .split(',')
                .any(|c| hierarchy.controllers.iter().any(|h| h == c))
        };
        matches.then(|| path.to_string())
    })
}

/// Where this kernel's group goes in `hierarchy`. `parent_setting` is
/// `RUSTMETER_CGROUP_PARENT`: `:`-separated entries, each either a directory inside a
/// cgroup mount (used for that hierarchy) or a cgroup path such as `/rustmeter/alice`
/// (used under every hierarchy without an entry of its own); `{user}` stands for the
/// login name. Without it, the kernel's own cgroup.
pub fn parent_dir(
    hierarchy: &Hierarchy,
    parent_setting: Option<&str>,
    proc_self_cgroup: &str,
    user: &str,
) -> Option<PathBuf> {
    let relative = |path: &str| match path.trim_matches('/') {
        "" => hierarchy.mount.clone(),
        inner => hierarchy.mount.join(inner),
    };
    if let Some(setting) = parent_setting.filter(|s| !s.trim().is_empty()) {
        let entries: Vec<String> = setting
            .split(':')
            .map(|e| e.trim().replace("{user}", user))
            .filter(|e| !e.is_empty())
            .collect();
        let inside = |entry: &str| Path::new(entry).starts_with(&hierarchy.mount);
        if let Some(own) = entries.iter().find(|e| inside(e)) {
            return Some(PathBuf::from(own));
        }
        return entries
            .iter()
            .find(|e| !e.starts_with("/sys/fs/cgroup"))
            .map(|e| relative(e));
    }
    own_path(proc_self_cgroup, hierarchy).map(|p| relative(&p))
}

/// A cgroup directory this kernel made.
#[derive(Debug, Clone)]
pub struct Group {
    pub dir: PathBuf,
    pub v2: bool,
}

/// Why a group could not be made, phrased for an administrator.
pub fn describe_io_error(action: &str, path: &Path, error: &std::io::Error) -> String {
    let why = match error.kind() {
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::NotFound => "no such directory".to_string(),
        _ => error.to_string(),
    };
    format!("cannot {action} {}: {why}", path.display())
}

/// Creates (or reuses) `parent/name` and makes sure `controller` is usable in it (v2:
/// enabling it in the parent's `cgroup.subtree_control` when needed).
pub fn make_group(
    parent: &Path,
    name: &str,
    v2: bool,
    controller: Controller,
) -> Result<PathBuf, String> {
    remove_stale_siblings(parent);
    let dir = parent.join(name);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(describe_io_error("create the cgroup", &dir, &e)),
    }
    if v2 {
        let probe = dir.join(format!("{}.max", controller.name()));
        if !probe.exists() {
            let control = parent.join("cgroup.subtree_control");
            if let Err(e) = std::fs::write(&control, format!("+{}", controller.name())) {
                return Err(format!(
                    "the {} controller is not enabled for {} and {}",
                    controller.name(),
                    parent.display(),
                    describe_io_error("enable it in", &control, &e)
                ));
            }
        }
    }
    Ok(dir)
}

/// Whether a group for `controller` could be made under `parent`, without making it.
pub fn check_parent(parent: &Path, v2: bool, controller: Controller) -> Result<(), String> {
    if !parent.is_dir() {
        return Err(format!(
            "cannot use {}: no such directory",
            parent.display()
        ));
    }
    let writable = |path: &Path| {
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            // SAFETY: access only reads the NUL-terminated path.
            .map(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
            .unwrap_or(false)
    };
    if !writable(parent) {
        return Err(format!(
            "cannot create a cgroup in {}: permission denied",
            parent.display()
        ));
    }
    if v2 {
        let control = parent.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&control)
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == controller.name());
        if !enabled && !writable(&control) {
            return Err(format!(
                "the {} controller is not enabled in {} and it is not writable",
                controller.name(),
                control.display()
            ));
        }
    }
    Ok(())
}

/// Writes one cap file of a group.
pub fn write_cap(dir: &Path, file: &str, value: u64) -> Result<(), String> {
    let path = dir.join(file);
    std::fs::write(&path, value.to_string()).map_err(|e| describe_io_error("write", &path, &e))
}

/// Writes a cap file that only some kernels have (swap accounting): absent is fine.
pub fn write_optional_cap(dir: &Path, file: &str, value: u64) -> Result<(), String> {
    let path = dir.join(file);
    if !path.exists() {
        return Ok(());
    }
    write_cap(dir, file, value)
}

/// Reads `key N` from a flat-keyed cgroup file (`memory.events`, `pids.events`,
/// `memory.oom_control`); 0 when absent.
pub fn read_key(path: &Path, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Removes `dir` once its processes are gone (a killed child takes a moment to exit).
pub fn remove_group(dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(_) => return,
        }
    }
}

/// Groups `rustmeter-<pid>` left by kernels that were killed before they could remove
/// them: empty, and their kernel is gone.
fn remove_stale_siblings(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("rustmeter-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !crate::sys::alive(pid) {
            // Fails harmlessly while processes remain in it.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,relatime shared:10 - cgroup cgroup rw,pids
32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 25 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
22 1 0:21 / /proc rw - proc proc rw";

    const PROC_SELF: &str =
        "8:pids:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice\n";

    #[test]
    fn finds_v1_controllers_before_v2() {
        let all = hierarchies(MOUNTINFO);
        assert_eq!(all.len(), 4);
        let memory = hierarchy_for(&all, Controller::Memory).unwrap();
        assert_eq!(memory.mount, PathBuf::from("/sys/fs/cgroup/memory"));
        assert!(!memory.v2);
        let pids = hierarchy_for(&all, Controller::Pids).unwrap();
        assert_eq!(pids.mount, PathBuf::from("/sys/fs/cgroup/pids"));
        assert!(hierarchy_for(&all[2..], Controller::Memory).is_none());
    }

    #[test]
    fn uses_v2_when_it_offers_the_controller() {
        let v2 = Hierarchy {
            mount: "/sys/fs/cgroup".into(),
            v2: true,
            controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
        };
        let all = vec![v2.clone()];
        assert_eq!(hierarchy_for(&all, Controller::Memory), Some(&v2));
        assert_eq!(own_path(PROC_SELF, &v2).as_deref(), Some("/user.slice"));
    }

    #[test]
    fn parent_is_own_cgroup_or_the_setting() {
        let all = hierarchies(MOUNTINFO);
        let memory = hierarchy_for(&all, Controller::Memory).unwrap();
        let pids = hierarchy_for(&all, Controller::Pids).unwrap();
        assert_eq!(
            parent_dir(memory, None, PROC_SELF, "ann").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert_eq!(
            parent_dir(pids, None, PROC_SELF, "ann").unwrap(),
            PathBuf::from("/sys/fs/cgroup/pids")
        );
        let setting = Some("/class/{user}");
        assert_eq!(
            parent_dir(pids, setting, PROC_SELF, "ann").unwrap(),
            PathBuf::from("/sys/fs/cgroup/pids/class/ann")
        );
        let setting = Some("/sys/fs/cgroup/memory/a/ann:/class/ann");
        assert_eq!(
            parent_dir(memory, setting, PROC_SELF, "ann").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/a/ann")
        );
        assert_eq!(
            parent_dir(pids, setting, PROC_SELF, "ann").unwrap(),
            PathBuf::from("/sys/fs/cgroup/pids/class/ann")
        );
    }

    #[test]
    fn reads_counters_from_flat_files() {
        let dir = std::env::temp_dir().join(format!("rustmeter-cg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("memory.oom_control");
        std::fs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(read_key(&file, "oom_kill"), 3);
        assert_eq!(read_key(&file, "missing"), 0);
        assert_eq!(read_key(&dir.join("absent"), "oom_kill"), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
