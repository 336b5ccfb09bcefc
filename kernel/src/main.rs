//! The `rustmeter` executable: the kernel, its installer, and — because evcxr re-launches
//! this same binary — the child process that runs user code.
//!
//! Holds no logic: the command line is parsed by [`rustmeter_kernel::cli`] and each
//! subcommand dispatched to the library.

use clap::{CommandFactory, Parser};
use rustmeter_kernel::cli::{Cli, Command, SparesAction};
use std::process::ExitCode;

fn main() -> ExitCode {
    // cargo runs this binary as rustc's wrapper (the dependency cache): before anything
    // else, as neither hook below applies to that process.
    // rustc runs this binary as the cell crate's linker (to time the link): before the
    // wrapper check, whose marker the linker inherits.
    if rustmeter_kernel::depcache::link::is_link_invocation() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        std::process::exit(rustmeter_kernel::depcache::link::run(&args));
    }
    if rustmeter_kernel::depcache::is_wrapper_invocation() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        std::process::exit(rustmeter_kernel::depcache::wrapper::run(&args));
    }
    // Must come first: when evcxr launches this binary as its user-code child, the
    // child's stdout relay goes in place before evcxr's runtime loop takes over.
    rustmeter_kernel::child_runtime::hook();
    evcxr::runtime_hook();

    // After the hooks: their processes' arguments are not rustmeter's command line.
    let cli = Cli::parse();
    // A kernel's stderr is its log: cargo's per-crate lines stay out of it (see `log`).
    let _quiet = matches!(
        cli.command,
        Some(Command::Kernel(_) | Command::Spare { .. })
    )
    .then(rustmeter_kernel::log::quiet_tool_output);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rustmeter: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let Some(command) = cli.command else {
        // A bare `rustmeter` prints its help, successfully.
        println!("{}", Cli::command().render_help());
        return Ok(());
    };
    match command {
        Command::Kernel(args) => rustmeter_kernel::launch::run_kernel(args.connection_file())
            .map_err(|e| format!("{e:#}")),
        Command::Spare { key } => {
            rustmeter_kernel::spare::run_spare(&key).map_err(|e| format!("{e:#}"))
        }
        Command::Spares {
            action: SparesAction::Start,
        } => {
            if rustmeter_kernel::spare::start_for_this_environment().map_err(|e| e.to_string())? {
                println!("a warm spare kernel is starting (or already warm)");
            } else {
                println!("warm spares are off (RUSTMETER_SPARE): none started");
            }
            Ok(())
        }
        Command::Spares {
            action: SparesAction::Stop,
        } => {
            let n = rustmeter_kernel::spare::stop_all();
            println!("stopped {n} warm spare kernel(s)");
            Ok(())
        }
        Command::InstallKernelspec(args) => {
            let spec = rustmeter_kernel::install::KernelSpecOptions {
                rust_src: args.rust_src,
                env: args.env,
            };
            rustmeter_kernel::install::write_kernelspec(&args.dir, &spec)
                .map_err(|e| format!("{e:#}"))
        }
        Command::Sample { pid, seconds } => {
            let report = rustmeter_kernel::telemetry::sampler::measure_cost(pid, seconds);
            println!("{report}");
            Ok(())
        }
        Command::DemoServer(args) => {
            rustmeter_kernel::demo_server::run(rustmeter_kernel::demo_server::DemoOptions {
                state_file: args.state,
                owner_pid: args.owner_pid,
                delay: std::time::Duration::from_millis(args.delay_ms),
            })
            .map_err(|e| format!("demo server: {e:#}"))
        }
        Command::Doctor => {
            use std::io::IsTerminal;
            let (text, ok) = rustmeter_kernel::doctor::report(
                &rustmeter_kernel::doctor::examine(),
                std::io::stdout().is_terminal(),
            );
            print!("{text}");
            if ok {
                Ok(())
            } else {
                Err("some checks failed (✗ above)".to_string())
            }
        }
        Command::Prewarm { cache } => {
            let summary = rustmeter_kernel::launch::prewarm::run(cache)?;
            print!("{summary}");
            Ok(())
        }
        // Hidden, for install.sh: checks RUSTMETER_* values with the kernel's own parsers.
        Command::CheckSetting { assignments } => {
            rustmeter_kernel::settings::check_assignments(&assignments)
        }
    }
}
