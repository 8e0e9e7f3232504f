//! The one wrapper every external program runs through (packer, ansible-playbook, cloud-init,
//! qemu). It shows the command shell-escaped with environment values hidden, streams merged
//! stdout/stderr line by line to a callback, keeps the tail for errors, and names the purpose.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot run `{program}` to {purpose}")]
    Spawn {
        purpose: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{purpose} failed: `{command}` {status}")]
    Failed {
        purpose: String,
        command: String,
        status: String,
        tail: Vec<String>,
        log: Option<PathBuf>,
    },
    #[error("{purpose} was interrupted")]
    Interrupted { purpose: String },
    /// A file the program wrote could not be read back (an internal error).
    #[error("{context}: {}", .path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ProcessError {
    pub fn is_interrupted(&self) -> bool {
        matches!(self, ProcessError::Interrupted { .. })
    }
    pub fn is_missing_program(&self) -> bool {
        matches!(self, ProcessError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
    pub fn hints(&self) -> Vec<String> {
        match self {
            ProcessError::Spawn { program, .. } => vec![format!(
                "`{program}` is installed by `make setup` (see README); or point PARBAKE_PACKER / PARBAKE_ANSIBLE_PLAYBOOK / PARBAKE_CLOUD_INIT at it"
            )],
            ProcessError::Failed { log: Some(log), .. } => {
                vec![format!("the full output is in {}", log.display())]
            }
            _ => Vec::new(),
        }
    }
    pub fn output_tail(&self) -> Option<String> {
        match self {
            ProcessError::Failed { tail, .. } if !tail.is_empty() => {
                let mut s = String::from("  last lines of output:\n");
                for l in tail {
                    s.push_str("  | ");
                    s.push_str(l);
                    s.push('\n');
                }
                Some(s)
            }
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub lines: Vec<String>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
    pub fn tail(&self, n: usize) -> Vec<String> {
        self.lines[self.lines.len().saturating_sub(n)..].to_vec()
    }
}

const TAIL: usize = 25;

/// How long a finished program's output may stay open (held by processes it started) before
/// those are stopped.
const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The lines of a running program's output, read on their own thread so the caller can watch
/// the program while no line comes; the channel closes at the end of the output.
fn read_lines(
    reader: std::sync::Arc<duct::ReaderHandle>,
) -> std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = BufReader::new(&*reader);
        loop {
            let mut raw = Vec::new();
            match buf.read_until(b'\n', &mut raw) {
                Ok(0) => break,
                Ok(_) => {
                    if tx.send(Ok(raw)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
    });
    rx
}

#[derive(Debug, Clone)]
pub struct Cmd {
    purpose: String,
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(String, OsString)>,
    cwd: Option<PathBuf>,
}

impl Cmd {
    /// `purpose` completes "cannot run X to …" and "… failed", e.g. "validate the qemu template".
    pub fn new(purpose: impl Into<String>, program: impl Into<OsString>) -> Self {
        Cmd {
            purpose: purpose.into(),
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
        }
    }
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<OsString>) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The command line as a user could paste it, with environment values hidden.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self.envs.iter().map(|(k, _)| format!("{k}=…")).collect();
        parts.push(shell_escape::escape(self.program.to_string_lossy()).into_owned());
        for a in &self.args {
            parts.push(shell_escape::escape(a.to_string_lossy()).into_owned());
        }
        parts.join(" ")
    }

    fn expression(&self) -> duct::Expression {
        let mut e = duct::cmd(&self.program, &self.args)
            .stderr_to_stdout()
            .unchecked()
            .stdin_null()
            // own process group: a terminal's Ctrl-C reaches parbake only, which forwards it once
            .before_spawn(|c| {
                use std::os::unix::process::CommandExt;
                c.process_group(0);
                Ok(())
            });
        for (k, v) in &self.envs {
            e = e.env(k, v);
        }
        if let Some(d) = &self.cwd {
            e = e.dir(d);
        }
        e
    }

    fn spawn_error(&self, source: std::io::Error) -> ProcessError {
        ProcessError::Spawn {
            purpose: self.purpose.clone(),
            program: self.program.to_string_lossy().into_owned(),
            source,
        }
    }

    /// Runs to completion, streaming each output line to `on_line`. A non-zero exit is not an
    /// error here; see [`Cmd::run_checked`].
    pub fn run_streaming(&self, mut on_line: impl FnMut(&str)) -> Result<Output, ProcessError> {
        let reader = std::sync::Arc::new(
            self.expression()
                .reader()
                .map_err(|e| self.spawn_error(e))?,
        );
        // registered for Ctrl-C forwarding while it runs
        let _guard = crate::interrupt::ChildGuard::new(reader.pids());
        // the child leads its own process group (see `expression`)
        let group = reader.pids().first().copied();
        let rx = read_lines(reader.clone());
        let mut lines = Vec::new();
        let mut exited: Option<std::time::Instant> = None;
        let mut killed = false;
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(500)) {
                Ok(Ok(raw)) => {
                    let line = String::from_utf8_lossy(&raw)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    on_line(&line);
                    lines.push(line);
                }
                Ok(Err(e)) => return Err(self.spawn_error(e)),
                // end of output
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if exited.is_none()
                        && reader
                            .try_wait()
                            .map_err(|e| self.spawn_error(e))?
                            .is_some()
                    {
                        exited = Some(std::time::Instant::now());
                    }
                    // The program is gone but its output never ends: something it started
                    // (Packer's VM, after a Packer crash) holds the pipe. Those are left over
                    // in its process group: they are stopped, or this would wait forever.
                    match (exited, group) {
                        (Some(t), Some(pgid)) if !killed && t.elapsed() > LEFTOVER_GRACE => {
                            let note = format!(
                                "parbake: {} exited, but processes it started still held its output; stopped them",
                                self.program.to_string_lossy()
                            );
                            on_line(&note);
                            lines.push(note);
                            // SAFETY: a signal to the process group this child led
                            unsafe {
                                libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
                            }
                            killed = true;
                        }
                        (Some(t), _) if t.elapsed() > LEFTOVER_GRACE * 2 => break,
                        _ => {}
                    }
                }
            }
        }
        let status = reader
            .try_wait()
            .map_err(|e| self.spawn_error(e))?
            .map(|o| o.status)
            .ok_or_else(|| {
                self.spawn_error(std::io::Error::other("child still running after EOF"))
            })?;
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(2) || crate::interrupt::interrupted() {
            return Err(ProcessError::Interrupted {
                purpose: self.purpose.clone(),
            });
        }
        Ok(Output {
            code: status.code(),
            lines,
        })
    }

    /// Captures output; fails with the command, status and output tail on a non-zero exit.
    pub fn run_checked(&self) -> Result<Output, ProcessError> {
        let out = self.run_streaming(|_| {})?;
        if out.success() {
            Ok(out)
        } else {
            Err(self.failed(&out, None))
        }
    }

    /// A clean-up step (unmount, delete a namespace): runs to completion even after Ctrl-C,
    /// which is not forwarded to it, its output discarded. True when it succeeded.
    pub fn run_cleanup(&self) -> bool {
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new(&self.program);
        c.args(&self.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c.status().is_ok_and(|s| s.success())
    }

    pub fn failed(&self, out: &Output, log: Option<PathBuf>) -> ProcessError {
        ProcessError::Failed {
            purpose: self.purpose.clone(),
            command: self.display(),
            status: match out.code {
                Some(c) => format!("exited with status {c}"),
                None => "was killed by a signal".into(),
            },
            tail: out.tail(TAIL),
            log,
        }
    }
}

/// Makes a one-time ed25519 key pair at `key` (and `key.pub`), returning the public key line.
pub fn ssh_keygen(key: &Path, comment: &str) -> Result<String, ProcessError> {
    Cmd::new("make a one-time SSH key", "ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(key)
        .run_checked()?;
    let public = key.with_extension("pub");
    // reading rule exception (src/fsread.rs): ssh-keygen's output in a private temp dir
    std::fs::read_to_string(&public)
        .map(|s| s.trim().to_string())
        .map_err(|source| ProcessError::Io {
            context: "read",
            path: public,
            source,
        })
}

/// A program parbake starts and does not wait for (a VM, a container): in its own process
/// group, stdin closed, both output streams into one file. With [`Cmd`], the only way parbake
/// starts a program.
pub struct Background(duct::Handle);

impl Background {
    pub fn start(
        program: &str,
        args: Vec<OsString>,
        dir: &Path,
        output: std::fs::File,
    ) -> std::io::Result<Background> {
        duct::cmd(program, args)
            .dir(dir)
            .stdin_null()
            // duct applies the outer redirect first: join stderr to stdout, then point stdout
            // at the file, so neither stream holds on to parbake's own stdout
            .stderr_to_stdout()
            .stdout_file(output)
            .unchecked()
            .before_spawn(|c| {
                use std::os::unix::process::CommandExt;
                c.process_group(0);
                Ok(())
            })
            .start()
            .map(Background)
    }

    /// The program's process id (and so its process group's).
    pub fn pid(&self) -> Option<u32> {
        self.0.pids().first().copied()
    }

    /// Its exit status, once it has exited.
    pub fn try_wait(&self) -> std::io::Result<Option<std::process::ExitStatus>> {
        Ok(self.0.try_wait()?.map(|out| out.status))
    }

    /// Waits for it to exit.
    pub fn wait(&self) -> std::io::Result<std::process::ExitStatus> {
        Ok(self.0.wait()?.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packer 1.6.6 can crash and leave its VM running, holding the output pipe: the run ends
    /// anyway, with the program's own status, and what it left is stopped.
    #[test]
    fn a_program_that_exits_leaving_a_child_on_its_output_does_not_hang() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("leftover.pid");
        let started = std::time::Instant::now();
        let out = Cmd::new("exit and leave a child behind", "sh")
            .args([
                "-c".to_string(),
                format!(
                    "sleep 300 & echo $! > {}; echo started; exit 3",
                    pid_file.display()
                ),
            ])
            .run_streaming(|_| {})
            .unwrap();
        let took = started.elapsed();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.lines[0], "started");
        assert!(
            out.lines.iter().any(|l| l.contains("stopped them")),
            "{:?}",
            out.lines
        );
        assert!(took < std::time::Duration::from_secs(30), "{took:?}");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: signal 0 only asks whether the process exists
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        assert!(!alive || zombie, "the leftover child {pid} still runs");
    }

    #[test]
    fn a_normal_run_streams_every_line_and_its_status() {
        let mut seen = Vec::new();
        let out = Cmd::new("print two lines", "sh")
            .args(["-c", "echo one; echo two >&2; exit 0"])
            .run_streaming(|l| seen.push(l.to_string()))
            .unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(seen, ["one", "two"]);
    }
}
