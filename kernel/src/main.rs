//! The `rustmeter` executable: the kernel, its installer, and — because evcxr re-launches
//! this same binary — the child process that runs user code.
//!
//! Holds no logic: it dispatches to the library.

use std::path::PathBuf;
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

    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rustmeter: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage:
  rustmeter kernel --connection-file FILE     run the Jupyter kernel
  rustmeter install-kernelspec --dir DIR [--rust-src PATH] [--env KEY=VALUE]...
                                              write kernel.json and logos into DIR
  rustmeter demo-server --state FILE --owner-pid PID [--delay-ms MS]
                                              the tutorials' demo server (started by
                                              rustmeter::demo::start in a cell)
  rustmeter doctor                            check this machine before a class
  rustmeter spares stop                       stop this user's warm spare kernels
  rustmeter prewarm [--cache DIR]             compile tokio (full) and the rustmeter crate into
                                              the dependency cache (DIR: e.g. a shared tier)
  rustmeter --version";

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("kernel") => {
            let file = flag_value(args, "--connection-file")
                .or_else(|| args.get(1).filter(|a| !a.starts_with("--")).cloned())
                .ok_or("kernel needs --connection-file FILE")?;
            rustmeter_kernel::server::run_kernel(PathBuf::from(file)).map_err(|e| format!("{e:#}"))
        }
        // Internal: a warm spare kernel, started by a kernel launch (see `spare`).
        Some("spare") => {
            let key = flag_value(args, "--key").ok_or("spare needs --key KEY")?;
            rustmeter_kernel::spare::run_spare(&key).map_err(|e| format!("{e:#}"))
        }
        Some("spares") => match args.get(1).map(String::as_str) {
            Some("stop") => {
                let n = rustmeter_kernel::spare::stop_all();
                println!("stopped {n} warm spare kernel(s)");
                Ok(())
            }
            _ => Err("usage: rustmeter spares stop".into()),
        },
        Some("install-kernelspec") => {
            let dir = flag_value(args, "--dir").ok_or("install-kernelspec needs --dir DIR")?;
            let rust_src = flag_value(args, "--rust-src").map(PathBuf::from);
            let env = flag_values(args, "--env")
                .into_iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| format!("--env expects KEY=VALUE, got {kv:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let spec = rustmeter_kernel::install::KernelSpecOptions { rust_src, env };
            rustmeter_kernel::install::write_kernelspec(PathBuf::from(dir).as_path(), &spec)
                .map_err(|e| format!("{e:#}"))
        }
        // For bench/telemetry_overhead: sample a process as a cell's telemetry would and
        // report what the sampling cost this process.
        Some("sample") => {
            let pid: u32 = flag_value(args, "--pid")
                .and_then(|p| p.parse().ok())
                .ok_or("sample needs --pid PID")?;
            let seconds: f64 = flag_value(args, "--seconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(10.0);
            let report = rustmeter_kernel::telemetry::sampler::measure_cost(pid, seconds);
            println!("{report}");
            Ok(())
        }
        Some("demo-server") => {
            let state_file = flag_value(args, "--state").ok_or("demo-server needs --state FILE")?;
            let owner_pid = flag_value(args, "--owner-pid")
                .and_then(|p| p.parse().ok())
                .ok_or("demo-server needs --owner-pid PID")?;
            let delay_ms: u64 = match flag_value(args, "--delay-ms") {
                None => 200,
                Some(ms) => ms
                    .parse()
                    .map_err(|_| format!("--delay-ms expects milliseconds, got {ms:?}"))?,
            };
            rustmeter_kernel::demo_server::run(rustmeter_kernel::demo_server::DemoOptions {
                state_file: PathBuf::from(state_file),
                owner_pid,
                delay: std::time::Duration::from_millis(delay_ms),
            })
            .map_err(|e| format!("demo server: {e:#}"))
        }
        Some("doctor") => {
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
        Some("prewarm") => {
            let cache = flag_value(args, "--cache").map(PathBuf::from);
            let summary = rustmeter_kernel::depcache::prewarm::run(cache)?;
            print!("{summary}");
            Ok(())
        }
        // Hidden, for install.sh: checks RUSTMETER_* values with the kernel's own parsers.
        Some("check-setting") => rustmeter_kernel::settings::check_assignments(&args[1..]),
        Some("--version") | Some("-V") => {
            println!("rustmeter {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("--help") | Some("-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

fn flag_value(args: &[String], flag: &str) -> Option<String> {
    flag_values(args, flag).into_iter().next()
}

fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == flag {
            if let Some(v) = iter.next() {
                out.push(v.clone());
            }
        } else if let Some(v) = arg.strip_prefix(&format!("{flag}=")) {
            out.push(v.to_string());
        }
    }
    out
}
