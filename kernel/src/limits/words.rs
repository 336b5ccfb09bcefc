//! The limits in words: what `:limits` and `rustmeter doctor` show, and the sentence for
//! a cap that is set but cannot be enforced, with what an administrator does about it.
//! Pure text; the cell errors for a cap that was hit are worded in `engine::report`.

use super::cgroup::{self, Controller};
use super::{parse, Limits, Setting, MEMORY_VARIABLE, PARENT_VARIABLE, THREAD_VARIABLE};

impl Limits {
    /// The limits in force, for `:limits` and `rustmeter doctor`.
    pub fn describe(&self) -> String {
        let mut lines = Vec::new();
        let enforced = |c: Controller| self.groups.iter().find(|(g, _)| *g == c);
        for (controller, setting, what, variable) in [
            (Controller::Memory, &self.memory, "memory", MEMORY_VARIABLE),
            (Controller::Pids, &self.threads, "threads", THREAD_VARIABLE),
        ] {
            lines.push(match (setting, enforced(controller)) {
                (None, _) if self.invalid.contains(&variable) => {
                    format!("{what}: no cap ({variable} has a bad value, see below)")
                }
                (None, _) => format!("{what}: no cap ({variable} not set, or off)"),
                (Some(s), Some((_, g))) => format!(
                    "{what}: {} for the process running your code ({}), {} cgroup {}",
                    shown(controller, s),
                    s.assignment(),
                    if self.planned {
                        "can be enforced by"
                    } else {
                        "enforced by"
                    },
                    g.dir.display()
                ),
                (Some(s), None) => format!(
                    "{what}: {} asked ({}) but NOT enforced (see below)",
                    shown(controller, s),
                    s.assignment()
                ),
            });
        }
        lines.extend(self.problems.iter().cloned());
        lines.join("\n")
    }
}

/// `500M (500 MiB)` or `1000 threads`.
fn shown(controller: Controller, setting: &Setting) -> String {
    match controller {
        Controller::Memory => parse::human_bytes(setting.value),
        Controller::Pids => format!("{} threads and processes", setting.value),
    }
}

/// The sentence for a cap that is configured but cannot be enforced: the setting, why,
/// and what an administrator does about it.
pub fn unavailable(setting: &Setting, why: &str, fix: &str) -> String {
    format!(
        "{} is set but NOT enforced: {why}. {fix}",
        setting.assignment()
    )
}

/// How an administrator delegates a cgroup directory of hierarchy `h` to the user.
pub(super) fn delegation_fix(h: &cgroup::Hierarchy, controller: Controller) -> String {
    let dir = h.mount.join("rustmeter/USER");
    let v2_step = if h.v2 {
        format!(
            ", enable the controller for it (echo +{name} > {root}/cgroup.subtree_control; \
             the same in {mid}/cgroup.subtree_control)",
            name = controller.name(),
            root = h.mount.display(),
            mid = h.mount.join("rustmeter").display(),
        )
    } else {
        String::new()
    };
    format!(
        "An administrator can delegate a cgroup to each learner: as root, mkdir -p {dir} \
         && chown -R USER {dir}{v2_step}, then set {PARENT_VARIABLE}=/rustmeter/{{user}} in \
         the kernelspec's env (./install.sh --env {PARENT_VARIABLE}=/rustmeter/{{user}}). \
         Running the kernel as root also works.",
        dir = dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_names_setting_reason_and_fix() {
        let setting = parse::memory("500M").unwrap().unwrap();
        let v1 = cgroup::Hierarchy {
            mount: "/sys/fs/cgroup/memory".into(),
            v2: false,
            controllers: vec!["memory".into()],
        };
        let text = unavailable(
            &setting,
            "cannot create the cgroup /sys/fs/cgroup/memory/x/rustmeter-1: permission denied",
            &delegation_fix(&v1, Controller::Memory),
        );
        assert!(text.starts_with("RUSTMETER_MEMORY_LIMIT=500M is set but NOT enforced: "));
        assert!(text.contains("permission denied"));
        assert!(text.contains("chown -R USER /sys/fs/cgroup/memory/rustmeter/USER"));
        assert!(text.contains("RUSTMETER_CGROUP_PARENT=/rustmeter/{user}"));
        let v2 = cgroup::Hierarchy {
            mount: "/sys/fs/cgroup".into(),
            v2: true,
            controllers: vec!["memory".into(), "pids".into()],
        };
        let fix = delegation_fix(&v2, Controller::Pids);
        assert!(
            fix.contains("echo +pids > /sys/fs/cgroup/cgroup.subtree_control"),
            "{fix}"
        );
    }
}
