//! Ctrl-C and SIGTERM. Children run in their own process group, so a terminal's Ctrl-C reaches
//! only parbake, which forwards one SIGINT to each running child (Packer then cleans up its
//! builder: hitting it twice would make it abandon the clean-up). parbake waits for the child,
//! removes its own temp dirs and VMs, and exits 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// What a second Ctrl-C would leave behind (an EC2 instance mid-wait), to name it on exit.
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn forward(pids: &[u32]) {
    for &pid in pids {
        // Each child leads its own process group; signal the group, because Packer's first
        // process is a wrapper that ignores SIGINT sent to it alone.
        // SAFETY: kill(2) with a process group we created and a valid signal number.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGINT);
        }
    }
}

/// Installs the handler (once per process). Cheap: one thread blocked on a signal stream.
/// Returns once the handlers are registered, so a signal that arrives afterwards never takes
/// the default action (death without clean-up); `main` calls it before anything else.
pub fn install() {
    INSTALL.call_once(|| {
        let (ready, registered) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("parbake-signals".into())
            .spawn(move || {
                let rt = crate::runtime::runtime(crate::runtime::Threads::Current)
                    .expect("signal runtime");
                rt.block_on(async {
                    use tokio::signal::unix::{signal, SignalKind};
                    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                    let _ = ready.send(());
                    loop {
                        tokio::select! {
                            _ = int.recv() => {},
                            _ = term.recv() => {},
                        }
                        let first = !INTERRUPTED.swap(true, Ordering::SeqCst);
                        if first {
                            crate::printer::stderr::line("\nparbake: interrupted; letting running programs clean up (Ctrl-C again to stop waiting)");
                            let pids = CHILDREN.lock().unwrap().clone();
                            forward(&pids);
                        } else {
                            crate::printer::stderr::line("parbake: interrupted twice; exiting now, clean-up may be incomplete");
                            for held in HELD.lock().unwrap().iter() {
                                crate::printer::stderr::line(format!("parbake: left behind: {held}"));
                            }
                            std::process::exit(130);
                        }
                    }
                });
            })
            .expect("signal thread");
        // the thread drops its sender only if it panicked: then the default actions stay
        let _ = registered.recv();
    });
}

/// Checkpoints: the step boundaries where a command stops once interrupted.
pub mod point {
    /// Just before an output becomes visible: a rename into place, or data on stdout.
    pub const COMMIT: &str = "commit";
    /// Before each real validator `parbake validate` runs.
    pub const CHECK: &str = "check";
}

/// SIGINT or SIGTERM arrived: the command stopped at a step boundary (exit 130).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// A step boundary: fails with [`Interrupted`] once SIGINT or SIGTERM has arrived, so the
/// command stops before its next step and commits nothing. Tests can hold a command here
/// ([`crate::testing::PAUSE_AT`]).
pub fn checkpoint(point: &str) -> Result<(), Interrupted> {
    crate::testing::pause_at(point, interrupted);
    if interrupted() {
        return Err(Interrupted);
    }
    Ok(())
}

/// Registers a running child for forwarding; unregisters on drop.
pub struct ChildGuard(Vec<u32>);

impl ChildGuard {
    pub fn new(pids: Vec<u32>) -> ChildGuard {
        CHILDREN.lock().unwrap().extend(pids.iter().copied());
        if interrupted() {
            forward(&pids);
        }
        ChildGuard(pids)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        CHILDREN.lock().unwrap().retain(|p| !self.0.contains(p));
    }
}

/// Names something parbake holds that an exit would leave behind (`instance i-0abc in
/// us-east-1 (verify web); parbake gc terminates it after its parbake:expires-at`); a second
/// Ctrl-C prints it. Forgotten on drop.
pub struct HeldGuard(String);

impl HeldGuard {
    pub fn new(what: String) -> HeldGuard {
        HELD.lock().unwrap().push(what.clone());
        HeldGuard(what)
    }
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap();
        if let Some(i) = held.iter().position(|h| *h == self.0) {
            held.remove(i);
        }
    }
}
