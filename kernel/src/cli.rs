//! The `rustmeter` command line: its subcommands and flags, parsed by clap.
//!
//! Owns only the shape of the command line (names, flags, help, value checks); `main.rs`
//! dispatches each subcommand to the library. Kept in the library so its unit tests run
//! with the library's. Must not run anything itself, and must not be reached by the
//! early hooks in `main.rs` (linker, rustc wrapper, user-code child), whose arguments are
//! not rustmeter's.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rustmeter",
    version,
    about = "A Jupyter kernel for Rust with CPU, memory and thread telemetry on every cell"
)]
pub struct Cli {
    /// None: print the help, as a bare `rustmeter` always has.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Jupyter kernel.
    Kernel(KernelArgs),
    /// Write kernel.json and the logos into DIR (for `jupyter kernelspec install`).
    InstallKernelspec(InstallKernelspecArgs),
    /// The tutorials' demo server (started by `rustmeter::demo::start` in a cell).
    DemoServer(DemoServerArgs),
    /// Check this machine before a class.
    Doctor,
    /// Manage this user's warm spare kernels.
    Spares {
        #[command(subcommand)]
        action: SparesAction,
    },
    /// Compile tokio (full) and the rustmeter crate into the dependency cache.
    Prewarm {
        /// The cache to fill (e.g. a shared tier); default: this user's cache.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
    },
    /// A warm spare kernel, started by a kernel launch.
    #[command(hide = true)]
    Spare {
        #[arg(long, value_name = "KEY")]
        key: String,
    },
    /// Sample a process as a cell's telemetry would and report what the sampling cost
    /// this process (for bench/telemetry_overhead).
    #[command(hide = true)]
    Sample {
        #[arg(long, value_name = "PID")]
        pid: u32,
        #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
        seconds: f64,
    },
    /// Check RUSTMETER_* settings with the kernel's own parsers (for install.sh); exits
    /// non-zero naming the first bad one.
    #[command(hide = true)]
    CheckSetting {
        #[arg(required = true, value_name = "NAME=VALUE")]
        assignments: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[group(id = "connection", required = true, multiple = false)]
pub struct KernelArgs {
    /// The connection file Jupyter writes for the kernel.
    #[arg(long = "connection-file", value_name = "FILE")]
    pub connection_file_flag: Option<PathBuf>,
    /// The same, given without the flag.
    #[arg(value_name = "FILE")]
    pub connection_file_positional: Option<PathBuf>,
}

impl KernelArgs {
    pub fn connection_file(self) -> PathBuf {
        // The group above requires exactly one of the two.
        self.connection_file_flag
            .or(self.connection_file_positional)
            .expect("clap requires --connection-file FILE or FILE")
    }
}

#[derive(Debug, Args)]
pub struct InstallKernelspecArgs {
    /// The folder to write into (created if needed).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Rust std sources for completion, when they are not in the toolchain.
    #[arg(long, value_name = "PATH")]
    pub rust_src: Option<PathBuf>,
    /// Extra environment for the kernel (e.g. RUSTMETER_TELEMETRY=compact); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct DemoServerArgs {
    /// Where the server records its address and state.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// The process whose end ends the server (the kernel).
    #[arg(long, value_name = "PID")]
    pub owner_pid: u32,
    /// How long each reply waits, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub delay_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum SparesAction {
    /// Start a warm spare for a kernel launched with this environment (unless one warms
    /// or waits already); for a class, run by the learner's Jupyter server at login.
    Start,
    /// Stop this user's warm spare kernels.
    Stop,
}

fn parse_key_value(kv: &str) -> Result<(String, String), String> {
    kv.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expects KEY=VALUE, got {kv:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rustmeter").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_misspelled_flag_is_an_error_naming_it() {
        let error = parse(&["prewarm", "--cahce", "/x"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnknownArgument);
        assert!(error.to_string().contains("--cahce"), "{error}");
    }

    const USER_FACING: [&str; 6] = [
        "kernel",
        "install-kernelspec",
        "demo-server",
        "doctor",
        "spares",
        "prewarm",
    ];

    #[test]
    fn help_lists_the_user_facing_commands_only() {
        let help = Cli::command().render_help().to_string();
        for shown in USER_FACING.iter().chain(&["--version"]) {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
        let commands: Vec<&str> = help
            .lines()
            .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
            .collect();
        for hidden in ["spare", "sample"] {
            assert!(!commands.contains(&hidden), "{hidden} listed in:\n{help}");
        }
        assert!(commands.contains(&"spares"), "{help}");
    }

    #[test]
    fn every_subcommand_has_help() {
        for name in USER_FACING.iter().chain(&["spare", "sample"]) {
            let error = parse(&[name, "--help"]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::DisplayHelp, "{name}");
        }
    }

    #[test]
    fn the_connection_file_is_a_flag_or_positional_but_required() {
        for args in [
            &["kernel", "--connection-file", "c.json"][..],
            &["kernel", "--connection-file=c.json"],
            &["kernel", "c.json"],
        ] {
            let Some(Command::Kernel(kernel)) = parse(args).unwrap().command else {
                panic!("{args:?} is not the kernel command");
            };
            assert_eq!(
                kernel.connection_file(),
                PathBuf::from("c.json"),
                "{args:?}"
            );
        }
        let missing = parse(&["kernel"]).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::MissingRequiredArgument);
        let both = parse(&["kernel", "--connection-file", "a", "b"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn install_kernelspec_env_must_be_key_value() {
        let Some(Command::InstallKernelspec(spec)) = parse(&[
            "install-kernelspec",
            "--dir",
            "d",
            "--env",
            "A=1",
            "--env=B=x=y",
        ])
        .unwrap()
        .command
        else {
            panic!("not install-kernelspec");
        };
        let expected = [("A", "1"), ("B", "x=y")].map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(spec.env, expected);
        let error = parse(&["install-kernelspec", "--dir", "d", "--env", "A"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert!(error.to_string().contains("KEY=VALUE"), "{error}");
    }

    #[test]
    fn optional_values_keep_their_defaults_and_reject_bad_numbers() {
        let Some(Command::DemoServer(demo)) =
            parse(&["demo-server", "--state", "s", "--owner-pid", "7"])
                .unwrap()
                .command
        else {
            panic!("not demo-server");
        };
        assert_eq!((demo.owner_pid, demo.delay_ms), (7, 200));
        let Some(Command::Sample { seconds, .. }) =
            parse(&["sample", "--pid", "7"]).unwrap().command
        else {
            panic!("not sample");
        };
        assert_eq!(seconds, 10.0);
        let bad = [
            "demo-server",
            "--state",
            "s",
            "--owner-pid",
            "7",
            "--delay-ms",
            "soon",
        ];
        assert_eq!(parse(&bad).unwrap_err().kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn spares_needs_an_action() {
        assert!(matches!(
            parse(&["spares", "stop"]).unwrap().command,
            Some(Command::Spares {
                action: SparesAction::Stop
            })
        ));
        assert!(parse(&["spares"]).is_err());
    }
}
