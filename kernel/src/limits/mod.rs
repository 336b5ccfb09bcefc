//! Memory and thread caps for the process that runs the cells, for shared machines.
//!
//! Owns what the settings mean (`RUSTMETER_MEMORY_LIMIT`, `RUSTMETER_THREAD_LIMIT`, where
//! to put the cgroup: `RUSTMETER_CGROUP_PARENT`; read and parsed by `crate::settings`),
//! this kernel's cgroups (`rustmeter-<kernel
//! pid>` in the memory and pids hierarchies), moving each user-code child into them at
//! spawn, and telling after a cell whether a cap was hit. It must not word cell errors
//! (`engine::report` does) nor touch the kernel's own process, cargo or rustc: only the
//! child is capped, so compiling and the kernel stay responsive when a cell hits a cap.
//!
//! `RLIMIT_AS` would not do (the idle child already maps over a gigabyte of address
//! space) and `RLIMIT_NPROC` counts all of a user's processes and is ignored for root;
//! cgroups cap exactly one kernel's child, restarted children included.

mod cgroup;
pub mod parse;
mod words;

use cgroup::Controller;
pub use parse::Setting;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use words::delegation_fix;
pub use words::unavailable;

pub const MEMORY_VARIABLE: &str = crate::settings::MEMORY_LIMIT.name;
pub const THREAD_VARIABLE: &str = crate::settings::THREAD_LIMIT.name;
pub const PARENT_VARIABLE: &str = crate::settings::CGROUP_PARENT.name;

/// A cap a cell ran into, for the cell's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    /// The kernel's OOM killer ended the child at the memory cap.
    Memory(Setting),
    /// Starting a thread or process was refused at the thread cap.
    Threads(Setting),
}

/// The cap counters at one moment; compare two with [`Limits::hits_since`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    oom_kills: u64,
    refused_tasks: u64,
}

/// One kernel's limits: what was asked, what is enforced, and what went wrong.
#[derive(Debug, Default)]
pub struct Limits {
    memory: Option<Setting>,
    threads: Option<Setting>,
    /// `(controller, group)` for each enforced cap.
    groups: Vec<(Controller, cgroup::Group)>,
    /// Bad settings and caps that could not be enforced, in words for the learner.
    problems: Vec<String>,
    /// Groups were only checked for, not made (`rustmeter doctor`).
    planned: bool,
    /// Variables whose value could not be read.
    invalid: Vec<&'static str>,
}

/// What [`Limits::set_up`] does with the cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Make this kernel's groups and write the caps.
    Create,
    /// Only check that they could be made (for `rustmeter doctor`, which changes nothing).
    Check,
}

impl Limits {
    /// Reads the settings from the environment and creates this kernel's cgroups. Never
    /// fails: what cannot be done is kept in [`Limits::problems`].
    pub fn from_env() -> Limits {
        use crate::settings::{text, CGROUP_PARENT, MEMORY_LIMIT, THREAD_LIMIT};
        Limits::set_up(
            &text(&MEMORY_LIMIT).unwrap_or_default(),
            &text(&THREAD_LIMIT).unwrap_or_default(),
            text(&CGROUP_PARENT).as_deref(),
            &format!("rustmeter-{}", std::process::id()),
            Mode::Create,
        )
    }

    /// Parses the two settings and, for each cap, makes `group_name` in its hierarchy.
    pub fn set_up(
        memory_text: &str,
        threads_text: &str,
        parent_setting: Option<&str>,
        group_name: &str,
        mode: Mode,
    ) -> Limits {
        let mut limits = Limits {
            planned: mode == Mode::Check,
            ..Limits::default()
        };
        match parse::memory(memory_text) {
            Ok(setting) => limits.memory = setting,
            Err(e) => {
                limits.invalid.push(MEMORY_VARIABLE);
                limits
                    .problems
                    .push(format!("{e}; no memory cap is applied."));
            }
        }
        match parse::threads(threads_text) {
            Ok(setting) => limits.threads = setting,
            Err(e) => {
                limits.invalid.push(THREAD_VARIABLE);
                limits
                    .problems
                    .push(format!("{e}; no thread cap is applied."));
            }
        }
        let wanted: Vec<(Controller, Setting)> = [
            (Controller::Memory, limits.memory.clone()),
            (Controller::Pids, limits.threads.clone()),
        ]
        .into_iter()
        .filter_map(|(c, s)| Some((c, s?)))
        .collect();
        if wanted.is_empty() {
            return limits;
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let hierarchies = cgroup::hierarchies(&mountinfo);
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let user = login_name();
        for (controller, setting) in wanted {
            let Some(h) = cgroup::hierarchy_for(&hierarchies, controller) else {
                let why = format!(
                    "no cgroup hierarchy with the {} controller is mounted (none in \
                     /proc/self/mountinfo)",
                    controller.name()
                );
                let fix = "An administrator must make cgroups available (for a container: \
                           mount /sys/fs/cgroup read-write, or run it with its own cgroup \
                           namespace); running the kernel without the cap works meanwhile.";
                limits.problems.push(unavailable(&setting, &why, fix));
                continue;
            };
            let result = cgroup::parent_dir(h, parent_setting, &own, &user)
                .ok_or_else(|| {
                    format!(
                        "{PARENT_VARIABLE} names no directory for the {} hierarchy at {}",
                        controller.name(),
                        h.mount.display()
                    )
                })
                .and_then(|parent| {
                    if mode == Mode::Check {
                        cgroup::check_parent(&parent, h.v2, controller)?;
                        let dir = parent.join(group_name);
                        return Ok(cgroup::Group { dir, v2: h.v2 });
                    }
                    let dir = cgroup::make_group(&parent, group_name, h.v2, controller)?;
                    let group = cgroup::Group { dir, v2: h.v2 };
                    apply(&group, controller, setting.value).inspect_err(|_| {
                        cgroup::remove_group(&group.dir);
                    })?;
                    Ok(group)
                });
            match result {
                Ok(group) => limits.groups.push((controller, group)),
                Err(why) => {
                    let fix = delegation_fix(h, controller);
                    limits.problems.push(unavailable(&setting, &why, &fix));
                }
            }
        }
        limits
    }

    /// Bad settings and caps that are not enforced, each a full sentence with the fix.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Adds a pre-exec step to `command` that moves the new process into this kernel's
    /// groups before it runs anything, so every restarted child is capped too.
    pub fn attach(&self, command: &mut Command) {
        let procs: Vec<CString> = self
            .groups
            .iter()
            .filter_map(|(_, g)| {
                CString::new(
                    g.dir
                        .join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .ok()
            })
            .collect();
        if procs.is_empty() {
            return;
        }
        // SAFETY: between fork and exec only open/write/close run, all async-signal-safe,
        // on paths allocated before the fork. "0" means the writing process itself.
        unsafe {
            command.pre_exec(move || {
                for path in &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd >= 0 {
                        libc::write(fd, b"0".as_ptr().cast(), 1);
                        libc::close(fd);
                    }
                }
                Ok(())
            });
        }
    }

    /// A problem sentence when process `pid` is missing from one of the groups (the move
    /// in pre-exec cannot report failure), else None.
    pub fn check_member(&self, pid: u32) -> Option<String> {
        let (controller, group) = self.groups.iter().find(|(_, g)| {
            !std::fs::read_to_string(g.dir.join("cgroup.procs"))
                .map(|s| s.lines().any(|l| l.trim() == pid.to_string()))
                .unwrap_or(false)
        })?;
        let setting = match controller {
            Controller::Memory => self.memory.as_ref(),
            Controller::Pids => self.threads.as_ref(),
        }?;
        let why = format!(
            "the process running your code (pid {pid}) could not be moved into {}",
            group.dir.join("cgroup.procs").display()
        );
        let fix = "The user running the kernel must own (be able to write) that file.";
        Some(unavailable(setting, &why, fix))
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        let mut counters = Counters::default();
        for (controller, group) in &self.groups {
            match controller {
                Controller::Memory if group.v2 => {
                    counters.oom_kills =
                        cgroup::read_key(&group.dir.join("memory.events"), "oom_kill")
                }
                Controller::Memory => {
                    counters.oom_kills =
                        cgroup::read_key(&group.dir.join("memory.oom_control"), "oom_kill")
                }
                Controller::Pids => {
                    counters.refused_tasks = cgroup::read_key(&group.dir.join("pids.events"), "max")
                }
            }
        }
        counters
    }

    /// The caps hit since `before` was read.
    pub fn hits_since(&self, before: Counters) -> Vec<Hit> {
        let now = self.counters();
        let mut hits = Vec::new();
        if let Some(memory) = self
            .memory
            .clone()
            .filter(|_| now.oom_kills > before.oom_kills)
        {
            hits.push(Hit::Memory(memory));
        }
        if let Some(threads) = self
            .threads
            .clone()
            .filter(|_| now.refused_tasks > before.refused_tasks)
        {
            hits.push(Hit::Threads(threads));
        }
        hits
    }

    /// True when a setting has a value that could not be read.
    pub fn has_invalid_setting(&self) -> bool {
        !self.invalid.is_empty()
    }

    /// Removes this kernel's groups; call after the child was killed.
    pub fn remove(&self) {
        if self.planned {
            return;
        }
        for (_, group) in &self.groups {
            cgroup::remove_group(&group.dir);
        }
    }

    /// The group directories, for tests and diagnostics.
    pub fn group_dirs(&self) -> Vec<PathBuf> {
        self.groups.iter().map(|(_, g)| g.dir.clone()).collect()
    }
}

/// Writes `value` as the cap of `controller` in `group`.
fn apply(group: &cgroup::Group, controller: Controller, value: u64) -> Result<(), String> {
    let dir = &group.dir;
    match (controller, group.v2) {
        (Controller::Memory, false) => {
            cgroup::write_cap(dir, "memory.limit_in_bytes", value)?;
            // With swap, the cap must cover memory + swap or the child swaps instead.
            cgroup::write_optional_cap(dir, "memory.memsw.limit_in_bytes", value)
        }
        (Controller::Memory, true) => {
            cgroup::write_cap(dir, "memory.max", value)?;
            cgroup::write_optional_cap(dir, "memory.swap.max", 0)
        }
        (Controller::Pids, _) => cgroup::write_cap(dir, "pids.max", value),
    }
}

/// The user's login name, for `{user}` in the parent setting.
fn login_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once.
    unsafe {
        let entry = libc::getpwuid(libc::geteuid());
        if !entry.is_null() && !(*entry).pw_name.is_null() {
            if let Ok(name) = std::ffi::CStr::from_ptr((*entry).pw_name).to_str() {
                return name.to_string();
            }
        }
    }
    std::env::var("USER").unwrap_or_else(|_| unsafe { libc::geteuid() }.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_settings_means_no_cgroup_and_no_problem() {
        let limits = Limits::set_up("", "off", None, "rustmeter-test-none", Mode::Create);
        assert!(limits.problems().is_empty());
        assert!(limits.group_dirs().is_empty());
        assert!(limits.describe().contains("memory: no cap"));
        assert!(!limits.has_invalid_setting());
        assert!(limits.hits_since(Counters::default()).is_empty());
    }

    #[test]
    fn bad_settings_are_problems_naming_variable_and_value() {
        let limits = Limits::set_up("lots", "many", None, "rustmeter-test-bad", Mode::Create);
        let problems = limits.problems().join("\n");
        assert!(
            problems.contains("RUSTMETER_MEMORY_LIMIT=\"lots\""),
            "{problems}"
        );
        assert!(
            problems.contains("RUSTMETER_THREAD_LIMIT=\"many\""),
            "{problems}"
        );
        assert!(limits.group_dirs().is_empty());
        assert!(limits.has_invalid_setting());
        assert!(limits
            .describe()
            .contains("RUSTMETER_MEMORY_LIMIT has a bad value"));
    }

    /// Real cgroups, a real process tree: needs root or a delegated cgroup (as
    /// RUSTMETER_CGROUP_PARENT); says so and returns where neither exists.
    #[test]
    fn caps_a_real_process_tree_and_counts_refused_forks() {
        let name = format!("rustmeter-unittest-{}", std::process::id());
        let parent = crate::settings::text(&crate::settings::CGROUP_PARENT);
        let limits = Limits::set_up("256M", "40", parent.as_deref(), &name, Mode::Create);
        if !limits.problems().is_empty() {
            eprintln!(
                "no cgroup can be made here, not tested: {:?}",
                limits.problems()
            );
            return;
        }
        let dirs = limits.group_dirs();
        assert_eq!(dirs.len(), 2, "{dirs:?}");
        let before = limits.counters();
        // 60 background sleeps under a cap of 40 tasks: some forks must be refused.
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("for i in $(seq 60); do sleep 2 & done 2>/dev/null; wait")
            .process_group(0);
        limits.attach(&mut command);
        let mut shell = command.spawn().unwrap();
        assert_eq!(
            limits.check_member(shell.id()),
            None,
            "moved in before exec"
        );
        let status = shell.wait().unwrap();
        let hits = limits.hits_since(before);
        assert!(
            hits.iter()
                .any(|h| matches!(h, Hit::Threads(s) if s.value == 40)),
            "{hits:?} after {status}"
        );
        assert!(
            !hits.iter().any(|h| matches!(h, Hit::Memory(_))),
            "{hits:?}"
        );
        // SAFETY: kill only signals the process group this test started.
        unsafe { libc::kill(-(shell.id() as i32), libc::SIGKILL) };
        limits.remove();
        for dir in dirs {
            assert!(!dir.exists(), "{} not removed", dir.display());
        }
    }

    #[test]
    fn a_parent_that_cannot_exist_is_reported_not_fatal() {
        let limits = Limits::set_up(
            "500M",
            "1000",
            Some("/no-such-rustmeter-parent/{user}"),
            "rustmeter-test-missing",
            Mode::Create,
        );
        assert!(limits.group_dirs().is_empty());
        let problems = limits.problems().join("\n");
        assert_eq!(limits.problems().len(), 2, "{problems}");
        assert!(problems.contains("RUSTMETER_MEMORY_LIMIT=500M is set but NOT enforced"));
        assert!(problems.contains("RUSTMETER_THREAD_LIMIT=1000 is set but NOT enforced"));
        // The parent is named unless this machine has no cgroups mounted at all.
        assert!(
            problems.contains("no-such-rustmeter-parent") || problems.contains("is mounted"),
            "{problems}"
        );
        assert!(limits.describe().contains("NOT enforced"));
    }
}
