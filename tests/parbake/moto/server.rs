//! The moto server: EC2 and SSM over HTTP (PyPI `moto[server]`, pinned in .venv), one per
//! test run on a free port, ready when /moto-api/data.json answers, torn down with the test
//! process (PR_SET_PDEATHSIG). Fixture AMIs come from tests/fixtures/moto-amis.json;
//! tests/fixtures/moto_server.py makes CreateImage from an EBS-backed instance EBS-backed, as
//! in real EC2, and adds the stand-ins and switches its docstring lists.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::repo;

pub struct Moto {
    pub url: String,
    /// moto_server.py's PARBAKE_MOTO_CONSOLE_DIR: `R/S.console` here is what the runner of an
    /// instance of stack S in region R "prints" on its console (moto runs no guest); see
    /// [`Moto::console_file`].
    pub console_dir: std::path::PathBuf,
}

impl Moto {
    /// The console file of stack `stack`'s instances in `region` (its directory made): per
    /// region, as each test has its own, so tests running at once never read each other's.
    pub fn console_file(&self, region: &str, stack: &str) -> std::path::PathBuf {
        let dir = self.console_dir.join(region);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("{stack}.console"))
    }
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// Where moto_server.py records each API call it answers, one `REGION.log` per region.
pub fn actions_dir(console_dir: &std::path::Path) -> std::path::PathBuf {
    let dir = console_dir.join("actions");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn moto() -> &'static Moto {
    MOTO.get_or_init(start)
}

fn start() -> Moto {
    let python = repo().join(".venv/bin/python");
    assert!(
        repo().join(".venv/bin/moto_server").exists(),
        "moto_server is missing from .venv: run `make setup`"
    );
    // moto_server with fixes for moto gaps and the console switch (see the script)
    let console_dir = tempfile::Builder::new()
        .prefix("parbake-moto-console-")
        .tempdir()
        .unwrap()
        .keep();
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("tests/fixtures/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", "0"])
        .env("MOTO_ENABLE_AMI_VALIDATION", "true")
        .env("PARBAKE_MOTO_CONSOLE_DIR", &console_dir)
        .env("PARBAKE_MOTO_ACTIONS_DIR", actions_dir(&console_dir))
        .env(
            "MOTO_AMIS_PATH",
            repo().join("tests/fixtures/moto-amis.json"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; the server dies with the test process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    // PR_SET_PDEATHSIG fires when the spawning *thread* ends, so spawn from a thread that lives
    // as long as the test process
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("moto-parent".into())
        .spawn(move || {
            tx.send(cmd.spawn()).unwrap();
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    let mut child = rx.recv().unwrap().expect("start moto_server");
    let port = port_of(&mut child);
    std::mem::forget(child);
    wait_ready(port);
    Moto {
        url: format!("http://127.0.0.1:{port}"),
        console_dir,
    }
}

/// The port moto_server says it runs on; its log is drained from then on, so the pipe never
/// fills.
fn port_of(child: &mut std::process::Child) -> u16 {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("moto_server exited before printing its port")
            .unwrap();
        if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
            break rest
                .trim()
                .trim_end_matches('/')
                .parse::<u16>()
                .expect("port");
        }
    };
    // keep draining its log so the pipe never fills
    std::thread::spawn(move || for _ in lines {});
    port
}

/// Waits until moto_server answers /moto-api/data.json on `port`.
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.write_all(b"GET /moto-api/data.json HTTP/1.0\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
        });
        if matches!(ok, Ok(true)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
