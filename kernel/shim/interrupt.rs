/// rustmeter's cancel channel for cells (generated; part of the tokio shim because this
/// dylib is loaded once per process, so its statics are not copied into every cell).
///
/// The kernel makes a pipe whose read end this process inherits (its number is in
/// `RUSTMETER_INTERRUPT_FD`); an interrupt writes a byte, and the kernel drains the pipe
/// before the next cell. "Interrupted now?" is a non-consuming `poll`, so every await of
/// the cell sees it. The kernel rewrites each top-level `x.await` of a cell into
/// `x.__rm_interruptible().await?`: the cell returns early through `?`, and evcxr keeps
/// the variables of earlier cells.
#[doc(hidden)]
pub mod __rustmeter {
    use std::ffi::{c_int, c_short, c_ulong};
    use std::future::{Future, IntoFuture};
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, Once, OnceLock};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    #[repr(C)]
    struct PollFd {
        fd: c_int,
        events: c_short,
        revents: c_short,
    }

    extern "C" {
        fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    }

    const POLLIN: c_short = 0x1;
    const POLLERR: c_short = 0x8;
    const POLLHUP: c_short = 0x10;
    const POLLNVAL: c_short = 0x20;

    enum Readiness {
        Readable,
        Quiet,
        /// The channel is gone (the kernel closed it): nothing will ever arrive.
        Closed,
    }

    fn channel() -> Option<c_int> {
        static FD: OnceLock<Option<c_int>> = OnceLock::new();
        *FD.get_or_init(|| std::env::var("RUSTMETER_INTERRUPT_FD").ok()?.parse().ok())
    }

    fn readiness(fd: c_int, timeout_ms: c_int) -> Readiness {
        let mut entry = PollFd {
            fd,
            events: POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; poll only writes `revents`.
        let ready = unsafe { poll(&mut entry, 1, timeout_ms) };
        if ready <= 0 {
            return Readiness::Quiet;
        }
        if entry.revents & POLLIN != 0 {
            Readiness::Readable
        } else if entry.revents & (POLLERR | POLLHUP | POLLNVAL) != 0 {
            Readiness::Closed
        } else {
            Readiness::Quiet
        }
    }

    /// True once the learner interrupted the running cell (until the next cell starts).
    pub fn interrupted() -> bool {
        channel().is_some_and(|fd| matches!(readiness(fd, 0), Readiness::Readable))
    }

    /// Set by the watcher thread when an interrupt arrives, cleared once the kernel has
    /// drained the channel. Awaits read it instead of making a system call each: a loop
    /// of a million ready awaits would otherwise run several times slower. It may stay
    /// set a moment into the next cell, so a set flag is confirmed with [`interrupted`].
    static SEEN: AtomicBool = AtomicBool::new(false);

    /// The cheap check awaits make.
    fn interrupt_seen() -> bool {
        start_watcher();
        SEEN.load(Ordering::Acquire) && interrupted()
    }

    /// Starts the thread that wakes interrupted awaits. The kernel calls it with the tokio
    /// declaration, so the thread exists before any learner's cell counts threads (a
    /// thread appearing during a measured cell would be charged to it).
    pub fn start_watcher() {
        static WATCHER: Once = Once::new();
        WATCHER.call_once(|| {
            if let Some(fd) = channel() {
                let _ = std::thread::Builder::new()
                    .name("rustmeter-interrupt".into())
                    .spawn(move || watch(fd));
            }
        });
    }

    static WAKERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

    fn register(waker: &Waker) {
        if channel().is_none() {
            return;
        }
        let mut wakers = WAKERS.lock().unwrap_or_else(|p| p.into_inner());
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    /// Wakes every waiting await when an interrupt arrives, then waits for the kernel to
    /// drain the channel (at the next cell) before watching again.
    fn watch(fd: c_int) {
        loop {
            match readiness(fd, -1) {
                Readiness::Closed => return,
                Readiness::Quiet => continue, // a signal interrupted poll
                Readiness::Readable => {}
            }
            SEEN.store(true, Ordering::Release);
            let wakers = std::mem::take(&mut *WAKERS.lock().unwrap_or_else(|p| p.into_inner()));
            for waker in wakers {
                waker.wake();
            }
            while matches!(readiness(fd, 0), Readiness::Readable) {
                std::thread::sleep(Duration::from_millis(10));
            }
            SEEN.store(false, Ordering::Release);
        }
    }

    /// The cell was interrupted at an `.await`.
    pub struct Interrupted;

    impl std::fmt::Debug for Interrupted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("interrupted: the cell stopped at an .await")
        }
    }

    impl std::fmt::Display for Interrupted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Debug::fmt(self, f)
        }
    }

    impl std::error::Error for Interrupted {}

    /// A future that ends with `Err(Interrupted)` as soon as the cell is interrupted.
    pub struct Interruptible<F> {
        inner: F,
    }

    impl<F: Future> Future for Interruptible<F> {
        type Output = Result<F::Output, Interrupted>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if interrupt_seen() {
                return Poll::Ready(Err(Interrupted));
            }
            // SAFETY: `inner` is structurally pinned: never moved out of `self`.
            let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
            match inner.poll(cx) {
                Poll::Ready(value) => Poll::Ready(Ok(value)),
                Poll::Pending => {
                    register(cx.waker());
                    // An interrupt that came between the check above and the
                    // registration woke nobody: look again.
                    if interrupt_seen() {
                        Poll::Ready(Err(Interrupted))
                    } else {
                        Poll::Pending
                    }
                }
            }
        }
    }

    pub trait RmInterruptible: IntoFuture + Sized {
        fn __rm_interruptible(self) -> Interruptible<Self::IntoFuture> {
            Interruptible {
                inner: self.into_future(),
            }
        }
    }

    impl<T: IntoFuture> RmInterruptible for T {}

    /// What an interrupted cell returns instead of its value: evcxr's cells return `()`
    /// or, once `?` is allowed (the kernel's tokio declaration allows it), a `Result`
    /// whose error prints itself and marks the cell failed.
    pub trait FromInterrupt {
        fn from_interrupt() -> Self;
    }

    impl FromInterrupt for () {
        fn from_interrupt() {}
    }

    impl<T, E: From<Interrupted>> FromInterrupt for Result<T, E> {
        fn from_interrupt() -> Self {
            Err(Interrupted.into())
        }
    }

    /// Once evcxr is in async mode it runs *every* cell as
    /// `runtime_guard.block_on(async { … })`. This method is found first (on the guard
    /// itself, before auto-deref reaches the runtime's) and runs the cell as a program
    /// would run the same code:
    /// - The cell's future is first polled with the runtime *entered* (as
    ///   `Handle::enter()` does), not inside `block_on`: a cell that never awaits runs to
    ///   its end right there, with `tokio::spawn` and `Handle::current()` working, and may
    ///   build and block on a runtime of its own (`#[tokio::main]`, `Runtime::new()`,
    ///   `futures::executor::block_on`), which inside `block_on` would panic.
    /// - A cell that is still waiting after that poll continues on the shared runtime,
    ///   raced against the interrupt: an interrupt drops the whole cell future wherever it
    ///   is parked (`join!`, `select!`, `join_all`, an `async` block) and the cell returns
    ///   early, so evcxr keeps the variables of earlier cells.
    /// - The future's type is erased (boxed) so that tokio's scheduler loop is compiled
    ///   once, here, not again in every cell (about 0.3 s of rustc per cell on 2 cores).
    pub trait RmBlockOn {
        fn block_on<F: Future>(self, future: F) -> F::Output
        where
            F::Output: FromInterrupt;
    }

    impl RmBlockOn for std::sync::MutexGuard<'_, ::tokio::runtime::Runtime> {
        fn block_on<F: Future>(mut self, future: F) -> F::Output
        where
            F::Output: FromInterrupt,
        {
            if ::tokio::runtime::Handle::try_current().is_ok() {
                // Not evcxr's call at the top of a cell (that one runs outside any
                // runtime) but a learner's own `Mutex<Runtime>` guard inside one: tokio's
                // own `block_on`, as in a program.
                return ::tokio::runtime::Runtime::block_on(&self, future);
            }
            super::__rustmeter_runtime::adopt(&mut self);
            super::__rustmeter_runtime::cell_started();
            let mut output = None;
            run_cell(&self, Box::pin(async { output = Some(future.await) }));
            super::__rustmeter_runtime::cell_ending(&self);
            output.unwrap_or_else(F::Output::from_interrupt)
        }
    }

    /// Runs one cell's future (see [`RmBlockOn`]); returns when it ended or was interrupted.
    #[inline(never)]
    pub fn run_cell(
        runtime: &::tokio::runtime::Runtime,
        mut cell: Pin<Box<dyn Future<Output = ()> + '_>>,
    ) {
        let tasks_before = runtime.metrics().num_alive_tasks();
        {
            let _entered = runtime.enter();
            let mut context = Context::from_waker(Waker::noop());
            if cell.as_mut().poll(&mut context).is_ready() {
                return;
            }
        }
        let interrupted = runtime
            .block_on(Interruptible { inner: cell })
            .is_err();
        if interrupted {
            let still = runtime.metrics().num_alive_tasks().saturating_sub(tasks_before);
            if still > 0 {
                eprintln!(
                    "rustmeter: {still} task(s) this cell spawned keep running, as they would in a \
                     program whose function returned early; keep their JoinHandle and call \
                     .abort() to stop them."
                );
            }
        }
    }
}
