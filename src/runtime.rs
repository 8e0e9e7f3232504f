//! The one place parbake builds a tokio runtime. The commands are blocking; async is used only
//! for the EC2 calls, the signal listener and the `bake --all` scheduler, each of which builds
//! its runtime here.

/// The runtime could not be built (the host refused a thread or an epoll instance): an
/// internal error.
#[derive(Debug, thiserror::Error)]
#[error("tokio runtime: {0}")]
pub struct RuntimeError(pub std::io::Error);

/// Which runtime to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// One thread, the caller's: one command's EC2 calls, or the signal listener's own thread.
    Current,
    /// The `bake --all` scheduler: one worker that drives the schedule, and up to `blocking`
    /// threads for the layer bakes it runs at once (`spawn_blocking`).
    Pool { blocking: usize },
}

/// A runtime with I/O and timers enabled.
pub fn runtime(threads: Threads) -> Result<tokio::runtime::Runtime, RuntimeError> {
    let mut builder = match threads {
        Threads::Current => tokio::runtime::Builder::new_current_thread(),
        Threads::Pool { blocking } => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(1).max_blocking_threads(blocking.max(1));
            b
        }
    };
    builder.enable_all().build().map_err(RuntimeError)
}
