/// rustmeter's measuring of the runtime cells share (generated; part of the tokio shim, so
/// its statics exist once per process).
///
/// evcxr builds the cells' runtime with `Runtime::new()`; the first cell run through the
/// shim swaps it for one built here with tokio's task hooks (this crate's tokio is
/// compiled with `--cfg tokio_unstable`, which they need). The hooks keep counters in the
/// runtime page (`__rustmeter_page`), a shared mapping the kernel reads: spawns, ends,
/// time inside polls, the longest poll, threads, and each poll that held a worker past
/// `RUSTMETER_STALL_MS`. Per poll this costs two reads of the coarse clock (a few
/// nanoseconds each), a write and a swap on a cache line chosen by the task's id, and no
/// write shared by all workers unless the clock ticked.
#[doc(hidden)]
pub mod __rustmeter_runtime {
    use super::__rustmeter_page as page;
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::ffi::{c_int, c_long, c_void};
    use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
    use std::sync::{Mutex, OnceLock};

    #[repr(C)]
    struct Timespec {
        tv_sec: c_long,
        tv_nsec: c_long,
    }

    extern "C" {
        fn clock_gettime(clock: c_int, now: *mut Timespec) -> c_int;
        fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            offset: i64,
        ) -> *mut c_void;
    }

    /// Linux's `CLOCK_MONOTONIC_COARSE`: the last tick's time, read without a syscall.
    /// A poll shorter than a tick reads 0 or one tick with the right odds, so sums stay
    /// true on average and a stall (≥ tens of ms) is timed to the tick.
    const CLOCK_MONOTONIC_COARSE: c_int = 6;
    const PROT_READ_WRITE: c_int = 0x1 | 0x2;
    const MAP_SHARED: c_int = 0x1;

    fn coarse_ns() -> u64 {
        let mut now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to write into.
        unsafe { clock_gettime(CLOCK_MONOTONIC_COARSE, &mut now) };
        now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
    }

    /// The page: a shared mapping of the file the kernel reads, or (outside a kernel, or
    /// when the file cannot be made) process memory nobody reads.
    fn slots() -> &'static [AtomicU64] {
        static SLOTS: OnceLock<&'static [AtomicU64]> = OnceLock::new();
        SLOTS.get_or_init(|| {
            let slots = mapped().unwrap_or_else(|| {
                let owned: Vec<AtomicU64> = (0..page::SLOTS).map(|_| AtomicU64::new(0)).collect();
                Box::leak(owned.into_boxed_slice())
            });
            slots[page::PID].store(u64::from(std::process::id()), Relaxed);
            slots[page::MAGIC].store(page::MAGIC_VALUE, Release);
            slots
        })
    }

    fn mapped() -> Option<&'static [AtomicU64]> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::var_os("RUSTMETER_TELEMETRY_DIR")?;
        let path = std::path::Path::new(&dir).join(format!("runtime.{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .ok()?;
        // Written, not `set_len`: a sparse file on a full tmpfs faults (SIGBUS) at the
        // first store into the mapping.
        std::io::Write::write_all(&mut &file, &[0u8; page::BYTES]).ok()?;
        // SAFETY: a fresh shared mapping of a file of exactly this length; the mapping
        // outlives the file handle and is never unmapped (the page lives as long as the
        // process). AtomicU64 has the layout of u64 and the mapping is page-aligned.
        let address = unsafe {
            mmap(
                std::ptr::null_mut(),
                page::BYTES,
                PROT_READ_WRITE,
                MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if address as isize == -1 || address.is_null() {
            return None;
        }
        Some(unsafe { std::slice::from_raw_parts(address as *const AtomicU64, page::SLOTS) })
    }

    fn slot(index: usize) -> &'static AtomicU64 {
        &slots()[index]
    }

    /// The cell each live task was spawned by, to name it in a stall; removed when the
    /// task ends, which also tells its end from a blocking task's.
    fn spawned_by() -> &'static Mutex<HashMap<::tokio::task::Id, u64>> {
        static TASKS: OnceLock<Mutex<HashMap<::tokio::task::Id, u64>>> = OnceLock::new();
        TASKS.get_or_init(|| Mutex::new(HashMap::new()))
    }

    thread_local! {
        /// The task that ended last on this thread and its cell: a task that ends in a
        /// poll ends before the after-poll hook runs, so a stall in its last poll finds it
        /// here rather than in [`spawned_by`].
        static LAST_ENDED: Cell<Option<(::tokio::task::Id, u64)>> = const { Cell::new(None) };
    }

    fn stall_ns() -> u64 {
        let ms = std::env::var("RUSTMETER_STALL_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .unwrap_or(100);
        ms * 1_000_000
    }

    fn workers() -> usize {
        std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
    }

    fn on_spawn(meta: &::tokio::runtime::TaskMeta<'_>) {
        let seq = slot(page::CELL_SEQ).load(Relaxed);
        spawned_by()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(meta.id(), seq);
        let spawned = slot(page::SPAWNED).fetch_add(1, Relaxed) + 1;
        let alive = spawned.saturating_sub(slot(page::ENDED).load(Relaxed));
        slot(page::CELL_TASKS_PEAK).fetch_max(alive, Relaxed);
    }

    fn on_terminate(meta: &::tokio::runtime::TaskMeta<'_>) {
        let seq = spawned_by()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&meta.id());
        if let Some(seq) = seq {
            LAST_ENDED.with(|last| last.set(Some((meta.id(), seq))));
        }
        let counter = if seq.is_some() { page::ENDED } else { page::BLOCKING_ENDED };
        slot(counter).fetch_add(1, Relaxed);
    }

    fn on_after_poll(meta: &::tokio::runtime::TaskMeta<'_>, started: u64, threshold: u64) {
        let took = coarse_ns().saturating_sub(started);
        if took == 0 {
            return;
        }
        slot(page::BUSY_NS).fetch_add(took, Relaxed);
        slot(page::CELL_LONGEST_POLL_NS).fetch_max(took, Relaxed);
        if took < threshold {
            return;
        }
        let seq = spawned_by()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&meta.id())
            .copied()
            .or_else(|| match LAST_ENDED.with(Cell::get) {
                Some((id, seq)) if id == meta.id() => Some(seq),
                _ => None,
            })
            .unwrap_or(0);
        let place = meta.spawned_at();
        let line = if place.file() == "src/lib.rs" {
            u64::from(place.line())
        } else {
            0
        };
        let n = slot(page::STALLS_CLAIMED).fetch_add(1, Relaxed);
        let entry = page::STALL_BASE + (n as usize % page::STALL_RING) * page::STALL_WORDS;
        // Untagged while written: a reader takes an entry only with the tag of its number.
        slot(entry + page::STALL_TAG).store(0, Relaxed);
        slot(entry + page::STALL_DURATION_NS).store(took, Relaxed);
        slot(entry + page::STALL_SPAWN_SEQ).store(seq, Relaxed);
        slot(entry + page::STALL_SPAWN_LINE).store(line, Relaxed);
        slot(entry + page::STALL_TAG).store(n + 1, Release);
        slot(page::STALLS).fetch_add(1, Release);
    }

    /// Polls in progress, each in a slot of its own: the task's key (its id, hashed; 0
    /// marks a free slot) and when the poll started, on a cache line of their own. Found
    /// by the id the hooks are given, not by the thread: in a dylib every thread-local
    /// access is a call, and two of them per poll (with a flag per worker) cost 15 % of
    /// the run time of a cell making 1,000,000 polls; a counter shared by all workers
    /// cost 30 % (cache-line ping-pong). A poll takes the first free slot of four from
    /// the one its key names and keeps it to its end, so a long poll is never pushed out
    /// by the short polls other workers make meanwhile.
    #[repr(align(64))]
    struct PollSlot {
        key: AtomicU64,
        started: AtomicU64,
    }

    const POLL_SLOTS: usize = 64;
    const PROBES: usize = 4;
    static POLLS: [PollSlot; POLL_SLOTS] = [const {
        PollSlot {
            key: AtomicU64::new(0),
            started: AtomicU64::new(0),
        }
    }; POLL_SLOTS];

    /// Fibonacci hashing of the id's own `Hash` (one `u64`): a bijection, so two live
    /// tasks never share a key, and never 0 for an id (ids are never 0).
    struct IdHasher(u64);

    impl std::hash::Hasher for IdHasher {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn poll_key(id: ::tokio::task::Id) -> u64 {
        use std::hash::Hash;
        let mut hasher = IdHasher(0);
        id.hash(&mut hasher);
        hasher.0.max(1)
    }

    fn probe(key: u64) -> impl Iterator<Item = &'static PollSlot> {
        let first = (key >> 58) as usize;
        (0..PROBES).map(move |i| &POLLS[(first + i) % POLL_SLOTS])
    }

    fn poll_started(id: ::tokio::task::Id) {
        let key = poll_key(id);
        let now = coarse_ns();
        for slot in probe(key) {
            if slot.key.compare_exchange(0, key, Acquire, Relaxed).is_ok() {
                slot.started.store(now, Relaxed);
                return;
            }
        }
        // All four taken: this poll goes untimed.
    }

    /// When the poll of `id` started; frees its slot. `None` when it went untimed.
    fn poll_ended(id: ::tokio::task::Id) -> Option<u64> {
        let key = poll_key(id);
        let slot = probe(key).find(|slot| slot.key.load(Relaxed) == key)?;
        let started = slot.started.load(Relaxed);
        slot.key.store(0, Release);
        Some(started)
    }

    fn on_thread_start() {
        let alive = slot(page::THREADS_ALIVE).fetch_add(1, Relaxed) + 1;
        let blocking = alive.saturating_sub(slot(page::WORKERS).load(Relaxed));
        slot(page::CELL_BLOCKING_THREADS_PEAK).fetch_max(blocking, Relaxed);
    }

    /// A runtime with the measuring hooks, as the cells' shared one is built: for
    /// `bench/telemetry_overhead`, which times the same work on it and on a runtime
    /// without hooks, both fresh. It counts into the same page as the shared runtime.
    pub fn build_measured() -> std::io::Result<::tokio::runtime::Runtime> {
        build()
    }

    fn build() -> std::io::Result<::tokio::runtime::Runtime> {
        let workers = workers();
        slot(page::WORKERS).store(workers as u64, Relaxed);
        let threshold = stall_ns();
        slot(page::STALL_NS).store(threshold, Relaxed);
        ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .on_thread_start(on_thread_start)
            .on_thread_stop(|| {
                slot(page::THREADS_ALIVE).fetch_sub(1, Relaxed);
            })
            .on_task_spawn(on_spawn)
            .on_task_terminate(on_terminate)
            .on_before_task_poll(|meta| poll_started(meta.id()))
            .on_after_task_poll(move |meta| {
                if let Some(started) = poll_ended(meta.id()) {
                    on_after_poll(meta, started, threshold);
                }
            })
            .build()
    }

    /// The runtime evcxr made is swapped (once per runtime evcxr makes) for one built
    /// here, with the hooks. It has run nothing yet: evcxr makes it just before the cell.
    pub fn adopt(runtime: &mut ::tokio::runtime::Runtime) {
        static OURS: Mutex<Option<::tokio::runtime::Id>> = Mutex::new(None);
        let mut ours = OURS.lock().unwrap_or_else(|p| p.into_inner());
        if *ours == Some(runtime.handle().id()) {
            return;
        }
        let Ok(measured) = build() else {
            return;
        };
        *ours = Some(measured.handle().id());
        std::mem::replace(runtime, measured).shutdown_background();
        let seq = slot(page::CELL_SEQ).load(Relaxed);
        slot(page::STARTED_IN_SEQ).store(seq + 1, Relaxed);
    }

    /// A cell ends. A task's output reaches its `JoinHandle` before tokio runs the task's
    /// last hooks, so the cell awaiting it can end first, and on a loaded machine that
    /// worker may not run again for milliseconds: the last poll's time (a stall, most
    /// often) would then count in no cell. The same holds for a `spawn_blocking` task,
    /// whose end is counted after its awaiter wakes (CI once saw 7 of a cell's 8). So the
    /// end waits, at most 20 ms, for polls in flight and for blocking threads to go idle
    /// (tokio counts a thread idle only after the task's hooks ran); with neither (the
    /// usual end) it does not wait at all.
    pub fn cell_ending(runtime: &::tokio::runtime::Runtime) {
        let metrics = runtime.metrics();
        let polling = || POLLS.iter().any(|slot| slot.key.load(Acquire) != 0);
        let blocking = || metrics.num_blocking_threads() > metrics.num_idle_blocking_threads();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(20);
        while (polling() || blocking()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// A cell starts: what "during this cell" counts from.
    pub fn cell_started() {
        let s = slots();
        let spawned = s[page::SPAWNED].load(Relaxed);
        let ended = s[page::ENDED].load(Relaxed);
        let blocking_threads = s[page::THREADS_ALIVE]
            .load(Relaxed)
            .saturating_sub(s[page::WORKERS].load(Relaxed));
        s[page::CELL_SPAWNED0].store(spawned, Relaxed);
        s[page::CELL_ENDED0].store(ended, Relaxed);
        let blocking_ended = s[page::BLOCKING_ENDED].load(Relaxed);
        s[page::CELL_BLOCKING_ENDED0].store(blocking_ended, Relaxed);
        s[page::CELL_BUSY_NS0].store(s[page::BUSY_NS].load(Relaxed), Relaxed);
        s[page::CELL_STALLS0].store(s[page::STALLS].load(Relaxed), Relaxed);
        s[page::CELL_BLOCKING_THREADS0].store(blocking_threads, Relaxed);
        s[page::CELL_TASKS_PEAK].store(spawned.saturating_sub(ended), Relaxed);
        s[page::CELL_LONGEST_POLL_NS].store(0, Relaxed);
        s[page::CELL_BLOCKING_THREADS_PEAK].store(blocking_threads, Relaxed);
        s[page::CELL_SEQ].fetch_add(1, Release);
    }
}
