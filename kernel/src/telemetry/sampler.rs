//! Measures one process while a cell runs. Plain data in, plain data out.
//!
//! Methods, chosen for exactness where sampling is not enough:
//! - CPU time and RSS: `sysinfo` (user+system time of all threads; resident memory),
//!   read at the start, every window, and the end; cores = CPU-time delta / wall delta.
//! - Peak memory: the kernel's own high-water mark — `/proc/PID/clear_refs` ← 5 resets
//!   `VmHWM` before the run, `VmHWM` is read after — so a 50 ms spike is never missed.
//! - Threads: the `Threads:` count of `/proc/PID/status`, every 10–80 ms (sysinfo's task list
//!   leaves out the main thread and costs O(threads) per refresh).
//! - Compile CPU: `getrusage(RUSAGE_CHILDREN)` of the kernel, whose waited-for children
//!   are cargo and rustc (short rustc processes escape any sampling).

use super::runtime::{PageReading, RuntimePage};
use super::Sample;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Threads are polled every 10 ms while their number changes, backing off to 50 ms while
/// it holds still (up to 80 ms): peaks happen while threads come and go, and a steady 1,000-thread
/// process then costs well under 1 % of a core.
const THREAD_POLL_FAST: Duration = Duration::from_millis(10);
const THREAD_POLL_SLOW: Duration = Duration::from_millis(80);
/// CPU/RSS windows: 50 ms for short runs, wider for long ones (the series keeps ≤ 200).
const WINDOW: Duration = Duration::from_millis(50);
const WINDOW_MAX: Duration = Duration::from_millis(500);
const MAX_SAMPLES: usize = 200;

/// One reading of the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    pub cpu_ms: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    /// The shared tokio runtime, once it exists.
    pub runtime: Option<RuntimeReading>,
}

/// What the series keeps of the runtime page at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RuntimeReading {
    pub tasks: u64,
    pub busy_ns: u64,
    pub workers: u64,
}

impl From<&PageReading> for RuntimeReading {
    fn from(page: &PageReading) -> Self {
        RuntimeReading {
            tasks: page.tasks_alive(),
            busy_ns: page.busy_ns(),
            workers: page.workers(),
        }
    }
}

/// What the live footer shows while the cell runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveView {
    pub cpu_cores_now: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    pub threads_peak: u64,
}

/// The measurement of a finished run.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub start: Reading,
    pub end: Reading,
    pub rss_peak_bytes: u64,
    pub threads_peak: u64,
    pub samples: Vec<Sample>,
    /// False when the process disappeared during the run (crash, restart).
    pub process_survived: bool,
    /// Cores other programs kept busy during the run (machine CPU minus the cell's).
    pub other_cores: Option<f64>,
    /// The reading when the user's code started (the CPU baseline of the run).
    pub run_start: Option<Reading>,
    /// The runtime page as the cell was taken and at its end (`None` while no runtime).
    pub runtime_before: Option<PageReading>,
    pub runtime_after: Option<PageReading>,
    /// The runtime's cell number the kernel saw at an earlier cell's end.
    pub runtime_seen_seq: Option<u64>,
}

struct Shared {
    live: LiveView,
    threads_peak: u64,
    /// (time, reading) at each window end.
    windows: Vec<(Instant, Reading)>,
    run_start: Option<Instant>,
    /// (cell process CPU ms, machine busy ms) when the run started.
    run_start_cpu: Option<(f64, f64)>,
    run_start_reading: Option<Reading>,
    gone: bool,
}

pub struct Sampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    /// Dropping it wakes the sampling thread at once (no poll interval to wait out).
    wake: Option<std::sync::mpsc::Sender<()>>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<std::thread::JoinHandle<()>>,
    start: Reading,
    system: Arc<Mutex<Option<System>>>,
    page: Arc<Mutex<Option<RuntimePage>>>,
    runtime_before: Option<PageReading>,
}

/// Without sysinfo (it failed to initialise: no readable `/proc`, which it reads itself)
/// readings are unknown.
fn read_with(system: &mut Option<System>, pid: u32) -> Option<Reading> {
    let threads = thread_count(pid)?;
    read_cpu_memory(system, pid, threads)
}

/// CPU and memory from sysinfo; `threads` comes from the caller's own poll.
fn read_cpu_memory(system: &mut Option<System>, pid: u32, threads: u64) -> Option<Reading> {
    let system = system.as_mut()?;
    let spid = Pid::from_u32(pid);
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[spid]),
        true,
        ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            // nothing() still lists every thread (O(threads) per refresh) unless told not to.
            .without_tasks(),
    );
    let process = system.process(spid)?;
    Some(Reading {
        cpu_ms: process.accumulated_cpu_time() as f64,
        rss_bytes: process.memory(),
        threads,
        runtime: None,
    })
}

/// The exact number of threads, from the `Threads:` line of `/proc/PID/status` (the same
/// count as `/proc/PID/stat` field 20, without summing every thread's CPU time, which
/// makes `stat` O(threads)).
pub fn thread_count(pid: u32) -> Option<u64> {
    crate::sys::status_number(pid, "Threads")
}

/// Resets the kernel's peak-RSS counter for `pid` (`VmHWM`).
pub fn reset_peak(pid: u32) -> bool {
    crate::sys::reset_peak_rss(pid)
}

/// `VmHWM` of `pid`, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    crate::sys::status_bytes(pid, "VmHWM")
}

pub use crate::sys::machine_cpu_ticks;

/// CPU time (ms) all programs on the machine have used since boot, from `/proc/stat`.
pub fn machine_busy_ms() -> Option<f64> {
    let t = machine_cpu_ticks()?;
    // Busy is all but idle and iowait.
    let busy: u64 = t.iter().sum::<u64>() - t[3] - t[4];
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(busy as f64 * 1000.0 / hz)
}

/// User+system CPU time of this process's waited-for children, in ms.
pub fn children_cpu_ms() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// The runtime page's reading, if `page` is there.
fn read_page(page: &Mutex<Option<RuntimePage>>) -> Option<PageReading> {
    page.lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()?
        .read()
}

impl Sampler {
    /// Takes the starting reading of `pid` and starts sampling it in the background;
    /// `page` is where its runtime page is (`None`: the runtime is not measured).
    pub fn start(pid: u32, page: Option<RuntimePage>) -> Sampler {
        let mut system = System::new().ok();
        let page = Arc::new(Mutex::new(page));
        let runtime_before = read_page(&page);
        let mut start = read_with(&mut system, pid).unwrap_or_default();
        start.runtime = runtime_before.as_ref().map(RuntimeReading::from);
        reset_peak(pid);
        let system = Arc::new(Mutex::new(system));
        let shared = Arc::new(Mutex::new(Shared {
            live: LiveView {
                rss_bytes: start.rss_bytes,
                threads: start.threads,
                threads_peak: start.threads,
                cpu_cores_now: 0.0,
            },
            threads_peak: start.threads,
            windows: vec![(Instant::now(), start)],
            run_start: None,
            run_start_cpu: None,
            run_start_reading: None,
            gone: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, sleeper) = std::sync::mpsc::channel();
        let thread = {
            let (stop, shared, system, page) = (
                Arc::clone(&stop),
                Arc::clone(&shared),
                Arc::clone(&system),
                Arc::clone(&page),
            );
            std::thread::Builder::new()
                .name("telemetry".into())
                .spawn(move || sample_loop(pid, stop, sleeper, shared, system, page))
                .ok()
        };
        Sampler {
            pid,
            stop,
            wake: Some(wake),
            shared,
            thread,
            start,
            system,
            page,
            runtime_before,
        }
    }

    /// The user's code started now (compilation is over).
    pub fn mark_run_start(&self, at: Instant) {
        // A fresh reading: CPU that threads of earlier cells used during compilation is
        // not this cell's.
        let fresh = {
            let mut system = self.system.lock().unwrap_or_else(|p| p.into_inner());
            read_with(&mut system, self.pid)
        }
        .map(|mut r| {
            r.runtime = read_page(&self.page).as_ref().map(RuntimeReading::from);
            r
        });
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.run_start = Some(at);
        let baseline = fresh
            .or(shared.windows.last().map(|w| w.1))
            .unwrap_or(self.start);
        shared.run_start_reading = Some(baseline);
        shared.run_start_cpu = machine_busy_ms().map(|m| (baseline.cpu_ms, m));
        // Drop windows from compilation: the series starts with the run.
        shared.windows = vec![(at, baseline)];
    }

    pub fn live(&self) -> LiveView {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).live
    }

    /// Stops sampling and returns the measurement; `run_end` closes the series.
    pub fn finish(mut self, run_end: Instant) -> Measured {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let runtime_after = read_page(&self.page);
        let end = {
            let mut system = self.system.lock().unwrap_or_else(|p| p.into_inner());
            read_with(&mut system, self.pid)
        }
        .map(|mut r| {
            r.runtime = runtime_after.as_ref().map(RuntimeReading::from);
            r
        });
        let peak = peak_rss(self.pid);
        let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let survived = end.is_some() && !shared.gone;
        let end = end.unwrap_or(shared.windows.last().map(|w| w.1).unwrap_or(self.start));
        let mut windows = shared.windows.clone();
        windows.push((run_end, end));
        let origin = shared.run_start.unwrap_or(windows[0].0);
        let run_wall_ms = run_end.saturating_duration_since(origin).as_secs_f64() * 1000.0;
        let other_cores = match (shared.run_start_cpu, machine_busy_ms()) {
            (Some((process0, machine0)), Some(machine1)) if run_wall_ms >= 100.0 => {
                let others = (machine1 - machine0) - (end.cpu_ms - process0);
                Some((others / run_wall_ms).max(0.0))
            }
            _ => None,
        };
        Measured {
            start: self.start,
            end,
            rss_peak_bytes: peak
                .unwrap_or(0)
                .max(end.rss_bytes)
                .max(self.start.rss_bytes),
            threads_peak: shared.threads_peak.max(end.threads),
            samples: to_samples(&windows, origin),
            process_survived: survived,
            other_cores,
            run_start: shared.run_start_reading,
            runtime_before: self.runtime_before.take(),
            runtime_after,
            runtime_seen_seq: self
                .page
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(RuntimePage::seen_seq),
        }
    }
}

fn sample_loop(
    pid: u32,
    stop: Arc<AtomicBool>,
    sleeper: std::sync::mpsc::Receiver<()>,
    shared: Arc<Mutex<Shared>>,
    system: Arc<Mutex<Option<System>>>,
    page: Arc<Mutex<Option<RuntimePage>>>,
) {
    let began = Instant::now();
    let mut next_window = began + WINDOW;
    let mut poll = THREAD_POLL_FAST;
    let mut last_threads = 0;
    while !stop.load(Ordering::SeqCst) {
        if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) = sleeper.recv_timeout(poll) {
            return;
        }
        let Some(threads) = thread_count(pid) else {
            shared.lock().unwrap_or_else(|p| p.into_inner()).gone = true;
            return;
        };
        poll = if threads == last_threads {
            (poll * 3 / 2).min(THREAD_POLL_SLOW)
        } else {
            THREAD_POLL_FAST
        };
        last_threads = threads;
        let now = Instant::now();
        let window = if now >= next_window {
            next_window = now + (now.duration_since(began) / 100).clamp(WINDOW, WINDOW_MAX);
            let mut system = system.lock().unwrap_or_else(|p| p.into_inner());
            read_cpu_memory(&mut system, pid, threads).map(|mut r| {
                r.runtime = read_page(&page).as_ref().map(RuntimeReading::from);
                r
            })
        } else {
            None
        };
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        s.threads_peak = s.threads_peak.max(threads);
        s.live.threads = threads;
        s.live.threads_peak = s.threads_peak;
        if let Some(reading) = window {
            if let Some((t0, r0)) = s.windows.last().copied() {
                let dt = now.duration_since(t0).as_secs_f64() * 1000.0;
                if dt > 0.0 {
                    s.live.cpu_cores_now = ((reading.cpu_ms - r0.cpu_ms) / dt).max(0.0);
                }
            }
            s.live.rss_bytes = reading.rss_bytes;
            let mut reading = reading;
            // The window's thread figure is the most seen in it, not the last.
            reading.threads = reading.threads.max(threads);
            s.windows.push((now, reading));
        }
    }
}

/// Samples `pid` for `seconds` as a cell would be, and returns (as JSON) the CPU time
/// this process spent doing it: what telemetry costs, for the overhead benchmark.
pub fn measure_cost(pid: u32, seconds: f64) -> serde_json::Value {
    let own_cpu = || {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
        ms(usage.ru_utime) + ms(usage.ru_stime)
    };
    let cpu0 = own_cpu();
    let t0 = Instant::now();
    let sampler = Sampler::start(pid, None);
    sampler.mark_run_start(Instant::now());
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let measured = sampler.finish(Instant::now());
    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let cpu_ms = own_cpu() - cpu0;
    serde_json::json!({
        "pid": pid,
        "wall_ms": wall_ms,
        "sampler_cpu_ms": cpu_ms,
        "share_of_one_core": cpu_ms / wall_ms,
        "threads_peak": measured.threads_peak,
        "samples": measured.samples.len(),
    })
}

/// Windows (time, cumulative reading) → samples of cores per window, ≤ 200 points.
pub fn to_samples(windows: &[(Instant, Reading)], origin: Instant) -> Vec<Sample> {
    let mut samples: Vec<Sample> = windows
        .windows(2)
        .filter_map(|pair| {
            let ((t0, r0), (t1, r1)) = (pair[0], pair[1]);
            let dt = t1.saturating_duration_since(t0).as_secs_f64() * 1000.0;
            if dt <= 0.0 || t1 < origin {
                return None;
            }
            let busy = match (r0.runtime, r1.runtime) {
                (Some(a), Some(b)) if b.workers > 0 => Some(
                    (b.busy_ns.saturating_sub(a.busy_ns) as f64 / 1e6 / (dt * b.workers as f64))
                        .clamp(0.0, 1.0),
                ),
                _ => None,
            };
            Some(Sample {
                t_ms: t1.saturating_duration_since(origin).as_secs_f64() * 1000.0,
                cpu_cores: ((r1.cpu_ms - r0.cpu_ms) / dt).max(0.0),
                rss_bytes: r1.rss_bytes,
                threads: r1.threads,
                tasks: r1.runtime.map(|r| r.tasks),
                workers_busy: busy,
            })
        })
        .collect();
    while samples.len() > MAX_SAMPLES {
        samples = samples
            .chunks(2)
            .map(|c| Sample {
                t_ms: c[c.len() - 1].t_ms,
                cpu_cores: c.iter().map(|s| s.cpu_cores).sum::<f64>() / c.len() as f64,
                rss_bytes: c.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
                threads: c.iter().map(|s| s.threads).max().unwrap_or(0),
                tasks: c.iter().filter_map(|s| s.tasks).max(),
                workers_busy: average(c.iter().filter_map(|s| s.workers_busy)),
            })
            .collect();
    }
    samples
}

fn average(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(thread_count(pid).unwrap() >= 1);
        assert!(peak_rss(pid).unwrap() > 0);
        let mut system = System::new().ok();
        let r = read_with(&mut system, pid).unwrap();
        assert!(r.rss_bytes > 0 && r.threads >= 1 && r.cpu_ms >= 0.0);
        assert!(
            read_with(&mut None, pid).is_none(),
            "no sysinfo, no reading"
        );
    }

    #[test]
    fn samples_are_bounded_and_keep_maxima() {
        let t0 = Instant::now();
        let windows: Vec<(Instant, Reading)> = (0..1000u64)
            .map(|i| {
                (
                    t0 + Duration::from_millis(50 * i),
                    Reading {
                        cpu_ms: 25.0 * i as f64,
                        rss_bytes: 1000 + i,
                        threads: if i == 500 { 1004 } else { 4 },
                        runtime: None,
                    },
                )
            })
            .collect();
        let samples = to_samples(&windows, t0);
        assert!(samples.len() <= MAX_SAMPLES);
        assert_eq!(samples.iter().map(|s| s.threads).max(), Some(1004));
        assert!((samples[0].cpu_cores - 0.5).abs() < 1e-9);
    }

    #[test]
    fn measures_a_child_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("2")
            .spawn()
            .unwrap();
        let sampler = Sampler::start(child.id(), None);
        sampler.mark_run_start(Instant::now());
        std::thread::sleep(Duration::from_millis(300));
        let m = sampler.finish(Instant::now());
        assert!(m.process_survived);
        assert_eq!(m.threads_peak, 1);
        assert!(m.rss_peak_bytes >= m.start.rss_bytes);
        assert!(m.samples.len() >= 3, "{:?}", m.samples);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
