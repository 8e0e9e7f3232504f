//! The end-to-end tier on the local target (`make e2e`, run by CI): a real base disk, real
//! Packer bakes and launches with the generated user-data. Two tiers in one test, since the
//! native one boots what the VM one bakes:
//! - the VM tier keeps what needs a kernel: the Packer bakes (the base layer, one overlay stack
//!   layer, a payload refresh), Ctrl-C in a bake (Packer's builder VM must stop), two
//!   concurrent `bake --all` (real builder VMs racing for one layer's lock; their `--verify`
//!   boots a VM, as `bake --all --verify` does), and one real qemu launch of a promoted stack
//!   with HTTP through the port forward (kernel, initramfs, NIC, DHCP, the live sysctls);
//! - the native tier (`native.rs`, `launch --container`: the layer's own systemd, cloud-init
//!   and runner in systemd-nspawn) proves the launch mechanics at native speed.
//!
//! Runs only with PARBAKE_E2E=1; without it the test says why and does nothing. With it, a
//! missing qemu, packer or systemd-nspawn fails the test.

mod native;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::repo;

fn enabled() -> bool {
    if std::env::var("PARBAKE_E2E").as_deref() == Ok("1") {
        for tool in [
            "qemu-system-x86_64",
            "packer",
            "cloud-localds",
            "qemu-img",
            "systemd-nspawn",
        ] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success();
            assert!(found, "the e2e tier needs {tool}: run `make setup`");
        }
        true
    } else {
        eprintln!(
            "e2e: skipped (set PARBAKE_E2E=1, as `make e2e` does, to bake and launch real VMs)"
        );
        false
    }
}

struct Tier {
    store: tempfile::TempDir,
    /// The example project with a vendored namespaced role and collection (see [`project`]).
    project: tempfile::TempDir,
}

impl Tier {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parbake"));
        c.args(args)
            .current_dir(self.project.path())
            .env("PARBAKE_STORE", self.store.path())
            .env_remove("PARBAKE_PROJECT");
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let started = Instant::now();
        // stdout to a file, not a pipe: wait for parbake itself, not for every holder of a pipe
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out_path = self.store.path().join(format!("stdout-{n}.json"));
        let status = self
            .cmd(args)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        let stdout = std::fs::read_to_string(&out_path).unwrap();
        eprintln!(
            "e2e: parbake {} took {:.1}s",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        assert!(status.success(), "parbake {args:?} failed:\n{stdout}");
        serde_json::from_str(&stdout).unwrap()
    }
}

/// Stops a VM left running by `launch --keep`, even when an assertion fails.
struct Vm(Value);

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(pid) = self.0["kept"]["pid"].as_u64() {
            unsafe {
                libc::kill(-(pid as i32), libc::SIGTERM);
            }
            let start = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && start.elapsed() < Duration::from_secs(15)
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if let Some(dir) = self.0["kept"]["dir"].as_str() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A copy of the example project that also uses a third-party role and a collection, as a
/// team's real Ansible repository would: `acme.tuning` (namespaced, installed by `parbake
/// vendor` from its release tarball) sets kernel settings with `ansible.posix.sysctl` (Debian's
/// ansible.posix, vendored as a directory), and nginx depends on it. So it runs at launch when
/// nothing is promoted, and is baked in the stack layer when nginx is promoted.
fn project() -> tempfile::TempDir {
    let copy = tempfile::Builder::new()
        .prefix("parbake-e2e-project-")
        .tempdir_in(repo().join("target"))
        .unwrap();
    for d in ["images", "roles", "packer", "scripts"] {
        crate::util::copy_dir(&repo().join(d), &copy.path().join(d));
    }
    let tarball = copy.path().join("acme.tuning-1.0.0.tar.gz");
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(repo().join("tests/fixtures/e2e"))
        .arg("acme.tuning")
        .status()
        .unwrap();
    assert!(tar.success());
    let posix = repo().join(
        ".tools/ansible-collections/usr/lib/python3/dist-packages/ansible_collections/ansible/posix",
    );
    assert!(
        posix.is_dir(),
        "{} is missing: run `make setup`",
        posix.display()
    );
    // a local source must be inside the project
    crate::util::copy_dir(&posix, &copy.path().join("sources/ansible.posix"));
    std::fs::write(
        copy.path().join("requirements.yml"),
        "roles:\n  - src: ./acme.tuning-1.0.0.tar.gz\n    name: acme.tuning\n\
         collections:\n  - name: ./sources/ansible.posix\n    type: dir\n",
    )
    .unwrap();
    let meta = copy.path().join("roles/nginx/meta/main.yml");
    let text = std::fs::read_to_string(&meta).unwrap();
    assert!(text.contains("dependencies:\n  - base\n"), "{text}");
    std::fs::write(
        &meta,
        text.replace(
            "dependencies:\n  - base\n",
            "dependencies:\n  - base\n  - acme.tuning\n",
        ),
    )
    .unwrap();
    // a minimal stack for the runner's mechanics: one tiny role with a window to reboot in
    let tick = copy.path().join("roles/tick");
    std::fs::create_dir_all(tick.join("tasks")).unwrap();
    std::fs::write(
        tick.join("tasks/main.yml"),
        "- name: Note each boot that runs this role\n  ansible.builtin.shell: cat /proc/sys/kernel/random/boot_id >> /var/lib/tick.boots && wc -l < /var/lib/tick.boots\n  register: tick_boots\n\
         - name: A window to reboot in (on its first boot, as long as the stack asks)\n  ansible.builtin.command: \"sleep {{ tick_first_boot_sleep if (tick_first_boot_sleep is defined and tick_boots.stdout | int == 1) else (tick_sleep | default(30)) }}\"\n\
         - name: Done\n  ansible.builtin.copy: {dest: /var/lib/tick.done, content: \"done\\n\", mode: \"0644\"}\n",
    )
    .unwrap();
    std::fs::write(
        copy.path().join("images/stacks/mini.yml"),
        "image: debian12\nroles: [tick]\npromote: []\n",
    )
    .unwrap();
    // the reboot test's stack: on its first boot, tick waits far longer than the test takes to
    // reboot it, so the reboot always lands mid-role, however slow the host
    std::fs::write(
        copy.path().join("images/stacks/reboot.yml"),
        "image: debian12\nroles: [tick]\npromote: []\nvars:\n  tick_first_boot_sleep: 2400\n  tick_sleep: 5\n",
    )
    .unwrap();
    native_stacks(copy.path());
    let out = Command::new(env!("CARGO_BIN_EXE_parbake"))
        .arg("vendor")
        .current_dir(copy.path())
        .env_remove("PARBAKE_PROJECT")
        .env(
            "PARBAKE_ANSIBLE_GALAXY",
            repo().join(".venv/bin/ansible-galaxy"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parbake vendor: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    copy
}

/// The native tier's stacks on the base layer (nothing promoted, so no bake of their own):
/// `checked` (a check that passes and one that cannot), `slow` (a launch_timeout that passes
/// while tick runs) and `leaky` (role `leak` fails with a secret in its message).
fn native_stacks(project: &Path) {
    let stacks = project.join("images/stacks");
    std::fs::write(
        stacks.join("checked.yml"),
        "image: debian12\nroles: [tick]\npromote: []\nlaunch_vars:\n  tick_sleep: 1\n\
         checks:\n  - file: /var/lib/tick.done\n    contains: done\n\
         \x20 - file: /var/lib/never-written\n    timeout: 2s\n",
    )
    .unwrap();
    std::fs::write(
        stacks.join("slow.yml"),
        "image: debian12\nroles: [tick]\npromote: []\nlaunch_vars:\n  tick_sleep: 3600\n\
         launch_timeout: 1m\n",
    )
    .unwrap();
    let leak = project.join("roles/leak/tasks");
    std::fs::create_dir_all(&leak).unwrap();
    std::fs::write(
        leak.join("main.yml"),
        "- name: connect with the password\n  ansible.builtin.fail:\n    msg: \"ROLE-SAYS {{ db_password }}\"\n",
    )
    .unwrap();
    std::fs::write(
        stacks.join("leaky.yml"),
        "image: debian12\nroles: [leak]\npromote: []\nlaunch_vars:\n  db_password: !secret file:/etc/machine-id\n",
    )
    .unwrap();
}

/// `command` run over SSH on a VM kept by `launch --keep`: the SSH command line and its output.
fn ssh_output(vm: &Value, command: &str) -> (String, std::io::Result<std::process::Output>) {
    let ssh = vm["kept"]["ssh"].as_str().unwrap().replacen(
        "ssh ",
        "ssh -o BatchMode=yes -o ConnectTimeout=30 -o LogLevel=ERROR ",
        1,
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{ssh} {command}"))
        .output();
    (ssh, out)
}

/// The output of `command` run over SSH on a VM kept by `launch --keep`.
fn ssh(vm: &Value, command: &str) -> String {
    let (ssh, out) = ssh_output(vm, command);
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "{ssh} {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The vendored role's effect on the VM: its collection module's settings are live and
/// persisted, and its handler ran.
fn assert_tuned(vm: &Value) {
    assert_eq!(ssh(vm, "/usr/sbin/sysctl -n vm.swappiness"), "13");
    assert_eq!(ssh(vm, "/usr/sbin/sysctl -n net.core.somaxconn"), "1024");
    assert!(ssh(vm, "cat /etc/sysctl.d/60-acme-tuning.conf").contains("vm.swappiness=13"));
    assert_eq!(ssh(vm, "cat /var/lib/acme-tuning.applied"), "swappiness 13");
}

/// The web stack's checks ran on the instance after its roles and passed: its page names the
/// stack, and nginx's unit is active.
fn assert_web_checks(vm: &Value) {
    let checks: Vec<(&str, &str)> = vm["status"]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in the launch report: {vm}"))
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [("http :80/", "ok"), ("unit nginx.service", "ok")],
        "{vm}"
    );
}

/// Reads a child's stderr on a thread: each line kept (and echoed when `echo`), and each
/// `Some` that `signal` returns for a line sent on the channel. The thread returns the lines.
fn watch_stderr<T: Send + 'static>(
    child: &mut std::process::Child,
    echo: bool,
    mut signal: impl FnMut(&str) -> Option<T> + Send + 'static,
) -> (
    std::sync::mpsc::Receiver<T>,
    std::thread::JoinHandle<Vec<String>>,
) {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in stderr.lines().map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
            if let Some(v) = signal(&line) {
                let _ = tx.send(v);
            }
            lines.push(line);
        }
        lines
    });
    (rx, reader)
}

fn http_get(port: u64) -> String {
    http_get_at("127.0.0.1", port)
}

/// `GET /` on `host:port` until it answers 200 (60 s at most).
fn http_get_at(host: &str, port: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect((host, port as u16))?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match attempt {
            Ok(b) if b.starts_with("HTTP/1.1 200") || b.starts_with("HTTP/1.0 200") => return b,
            other if Instant::now() > deadline => {
                panic!("no HTTP 200 on {host}:{port}: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

fn launched_roles(report: &Value) -> Vec<String> {
    report["status"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// The qemu processes Packer started in a build directory whose path starts with `prefix`.
/// Packer runs in its build directory and qemu inherits it as its working directory; its
/// command line names the disk relative to it, and Packer's temp files live in a short temp
/// dir elsewhere, so the command line cannot tie a VM to its build.
fn builder_vms(prefix: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-f", "qemu-system"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{}/cwd", pid.trim()))
                .is_ok_and(|cwd| cwd.display().to_string().starts_with(prefix))
        })
        .map(String::from)
        .collect()
}

/// How long a launch may take to report here: two TCG VMs share two cores, and this host's
/// TCG speed has varied 2-3x between days (a nothing-promoted web launch beside a bake took
/// over 900 s, launch's default).
const LAUNCH_TIMEOUT: &str = "3000";

const PROMOTED: [&str; 7] = [
    "bake",
    "web",
    "--promote",
    "nginx",
    "--promote",
    "webapp",
    "--json",
];

/// A scoped thread's result; its panic (a failed assertion) goes on as this thread's.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Promotes nginx and webapp: layer 1 is cached, layer 2 bakes on top of it and runs only the
/// promoted roles; its launch runs only the launch-only role. Returns the roles that ran at
/// launch.
fn bake_and_launch_promoted(tier: &Tier) -> Vec<String> {
    let bake2 = tier.json(&PROMOTED);
    assert_eq!(bake2["layers"][0]["outcome"], "cached");
    assert_eq!(bake2["layers"][1]["outcome"], "baked");
    // the stack layer runs only the promoted roles: the basic ones it depends on are shimmed
    let ran: Vec<&str> = bake2["layers"][1]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert!(
        ran.iter()
            .all(|r| ["acme.tuning", "nginx", "python", "webapp"].contains(r)),
        "the stack layer re-ran a baked role: {ran:?}"
    );
    assert!(ran.contains(&"acme.tuning"), "{ran:?}");
    assert_overlay_on_layer_1(&bake2);
    let vm = Vm(tier.json(&[
        "launch",
        "web",
        "--promote",
        "nginx",
        "--promote",
        "webapp",
        "--keep",
        "--timeout",
        LAUNCH_TIMEOUT,
        "--json",
    ]));
    assert_eq!(vm.0["status"]["state"], "done");
    let fewer = launched_roles(&vm.0);
    assert_eq!(
        fewer,
        ["identity"],
        "only the launch-only role runs at boot"
    );
    // the vendored role was baked into the stack layer (promoted as nginx's dependency)
    assert_tuned(&vm.0);
    assert_web_checks(&vm.0);
    let body = http_get(vm.0["http_port"].as_u64().unwrap());
    assert!(
        body.contains("stack=web") && body.contains(vm.0["instance_id"].as_str().unwrap()),
        "{body}"
    );
    fewer
}

/// The stack layer's disk in the store is a qcow2 overlay whose backing file is layer 1's
/// disk, as `qemu-img info --backing-chain` reads it; its size against layer 1's is printed.
fn assert_overlay_on_layer_1(bake: &Value) {
    let disk = |i: usize| PathBuf::from(bake["layers"][i]["image"].as_str().unwrap());
    let (base, top) = (disk(0), disk(1));
    let out = Command::new("qemu-img")
        .args(["info", "--backing-chain", "--output=json"])
        .arg(&top)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chain: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<PathBuf> = chain
        .as_array()
        .unwrap()
        .iter()
        .map(|d| std::fs::canonicalize(d["filename"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        files,
        [
            std::fs::canonicalize(&top).unwrap(),
            std::fs::canonicalize(&base).unwrap()
        ],
        "{chain}"
    );
    let bytes = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().blocks() * 512
    };
    let (b, t) = (bytes(&base), bytes(&top));
    eprintln!(
        "e2e: layer 1's disk {:.0} MiB, the stack layer's overlay {:.0} MiB ({:.2}x)",
        b as f64 / 1048576.0,
        t as f64 / 1048576.0,
        t as f64 / b as f64
    );
}

/// `verify` (with `how`: `--container`, natively) boots the minimal stack's top image with its
/// user-data, waits for the contract, tears the instance down and records a passed verdict
/// under the exact user-data's digest; then `publish` points the stack at it, keeping that
/// user-data. Returns the digest.
fn verify_and_publish_the_minimal_stack(tier: &Tier, how: &[&str]) -> String {
    let out = tier.cmd(&["userdata", "mini"]).output().unwrap();
    assert!(out.status.success());
    let digest = parbake::plan::sha256_hex(&out.stdout);
    let mut args = vec!["verify", "mini", "--timeout", LAUNCH_TIMEOUT, "--json"];
    args.extend_from_slice(how);
    let report = tier.json(&args);
    let v = &report["verification"];
    assert_eq!(v["passed"], true, "{report}");
    assert_eq!(v["userdata_sha256"], digest.as_str(), "{report}");
    let recorded = std::path::PathBuf::from(report["recorded"].as_str().unwrap());
    assert!(
        recorded.ends_with(format!("verified/{digest}.json")),
        "{report}"
    );
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&recorded).unwrap()).unwrap();
    assert_eq!(&on_disk, v);
    // the instance is gone: verify never keeps one (the other thread may have its own mini)
    let instance = report["launch"]["instance_id"].as_str().unwrap();
    let run = tier.store.path().join(format!("runs/mini-{instance}"));
    assert!(!run.exists(), "verify left its run dir {}", run.display());
    let published = tier.json(&["publish", "mini", "--json"]);
    assert_eq!(published["published"]["verified"], true, "{published}");
    assert_eq!(published["published"]["userdata_sha256"], digest.as_str());
    // the published user-data is kept byte for byte, for `launch --published` (native.rs
    // boots it)
    let store = tier.store.path().join("published/mini");
    assert_eq!(
        std::fs::read(store.join(format!("{digest}.user-data"))).unwrap(),
        out.stdout
    );
    digest
}

/// Ctrl-C during a bake: Packer cleans up, parbake removes its build dir, exits 130. Another
/// thread may have its own VMs in the same store, so only this bake's build dir counts.
fn interrupt_a_bake(tier: &Tier) {
    let mut child = tier
        .cmd(&["bake", "worker", "--promote", "worker"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // progress lines name the layer as `debian12-worker (<short hash>)`
    let (rx, reader) = watch_stderr(&mut child, false, |line| {
        let reached = line.contains("Waiting for SSH") || line.contains("Connected to SSH");
        let at = line.find("debian12-worker (")? + "debian12-worker (".len();
        let hash = line[at..].split(')').next()?;
        reached.then(|| hash.to_string())
    });
    let hash = rx
        .recv_timeout(Duration::from_secs(1800))
        .expect("the bake reached the VM");
    let build = tier.store.path().join("build").join(format!("{hash}-"));
    let build = build.display().to_string();
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !builder_vms(&build).is_empty(),
        "a builder VM is running before the interrupt"
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{}", lines.join("\n"));
    // Packer stops its VM as part of its clean-up; allow it a few seconds
    let ours = || builder_vms(&build);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ours().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(ours().is_empty(), "a builder VM survived the interrupt");
    let builds: Vec<PathBuf> = std::fs::read_dir(tier.store.path().join("build"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.display().to_string().starts_with(&build))
        .collect();
    assert!(builds.is_empty(), "build dirs left: {builds:?}");
}

/// `bake --all` on a copy of the project whose minimal stack promotes its role, with a stack
/// whose role fails, run twice at once in the same store:
/// - the shared base is a cache hit;
/// - the minimal stack's layer is baked for real by one run, while the other waits on its lock
///   and then finds it cached;
/// - the broken layer fails, naming the role, and does not stop the others; exit 1;
/// - with --verify, the run that baked the minimal stack's layer verifies that stack, and its
///   check that cannot pass fails it, named; `publish` refuses it.
///
/// Returns the copy, for the no-op run.
/// A copy of the tier's project (vendored roles and collections included), to change apart.
fn project_copy(tier: &Tier) -> tempfile::TempDir {
    let copy = tempfile::Builder::new()
        .prefix("parbake-e2e-project-")
        .tempdir_in(repo().join("target"))
        .unwrap();
    for d in ["images", "roles", "packer", "scripts", "vendor", "sources"] {
        crate::util::copy_dir(&tier.project.path().join(d), &copy.path().join(d));
    }
    for f in [
        "requirements.yml",
        "requirements.lock.json",
        "acme.tuning-1.0.0.tar.gz",
    ] {
        std::fs::copy(tier.project.path().join(f), copy.path().join(f)).unwrap();
    }
    copy
}

/// A launch role edited: the base layer's run is cached, so `bake --all` refreshes its payload
/// (no role runs; a Packer build, VM tier) instead of rebaking it, and the stack verified on
/// the refresh natively (`verify --container`) runs the edited role (its check reads what only
/// the edit writes). The refresh's disk is an overlay on the base layer's. A copy of the
/// project with one stack (tick at launch).
fn refresh_after_a_launch_role_edit(tier: &Tier) {
    let copy = project_copy(tier);
    for e in std::fs::read_dir(copy.path().join("images/stacks")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::write(
        copy.path().join("images/stacks/fresh.yml"),
        "image: debian12\nroles: [tick]\npromote: []\nlaunch_vars:\n  tick_sleep: 1\n\
         checks:\n  - file: /var/lib/tick.done\n    contains: refreshed\n",
    )
    .unwrap();
    let tasks = copy.path().join("roles/tick/tasks/main.yml");
    let text = std::fs::read_to_string(&tasks).unwrap();
    assert!(text.contains("content: \"done\\n\""), "{text}");
    std::fs::write(
        &tasks,
        text.replace("content: \"done\\n\"", "content: \"refreshed\\n\""),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let started = Instant::now();
        let out = tier
            .cmd(args)
            .current_dir(copy.path())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!(
            "e2e: {} (copy with tick edited) took {:.1}s\n{err}",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        assert_eq!(out.status.code(), Some(0), "{err}");
        serde_json::from_slice::<parbake::bake::all::AllReport>(&out.stdout).unwrap()
    };
    use parbake::bake::all::Outcome;
    let dry = run(&["bake", "--all", "--dry-run", "--verify", "--json"]);
    assert_eq!(dry.layers.len(), 1, "{dry:?}");
    assert_eq!(dry.layers[0].outcome, Outcome::ToRefresh, "{dry:?}");
    assert_eq!(dry.layers[0].why, ["payload changed: role tick"]);
    let r = run(&["bake", "--all", "--json"]);
    eprintln!("{}", parbake::bake::all::summary_text(&r));
    assert_eq!(r.layers[0].outcome, Outcome::Refreshed, "{r:?}");
    assert!(r.layers[0].roles.is_empty(), "a refresh ran roles: {r:?}");
    // the launch on the refresh, natively: the edited role ran (the check reads its edit)
    let started = Instant::now();
    let out = tier
        .cmd(&["verify", "fresh", "--container", "--json"])
        .current_dir(copy.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "e2e native: verify fresh --container (on the refresh) took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verification"]["passed"], true, "{v}");
    assert_eq!(v["launch"]["accelerator"], "nspawn", "{v}");
    assert_eq!(v["launch"]["layer_hash"], r.layers[0].hash.as_str(), "{v}");
    assert_eq!(
        v["verification"]["checks"],
        serde_json::json!(["file /var/lib/tick.done"]),
        "{v}"
    );
    // the refresh reads through the base layer's disk, which ran the roles
    let dir = tier.store.path().join("images").join(&r.layers[0].hash);
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("record.json")).unwrap()).unwrap();
    let run_layer = record["refresh_of"].as_str().unwrap().to_string();
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(dir.join("disk.qcow2"))
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        info["backing-filename"],
        format!("../{run_layer}/disk.qcow2"),
        "{info}"
    );
    let ran: Value = serde_json::from_str(
        &std::fs::read_to_string(
            tier.store
                .path()
                .join("images")
                .join(&run_layer)
                .join("record.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ran["name"], "debian12");
    assert!(ran.get("refresh_of").is_none(), "{ran}");
    eprintln!(
        "e2e: the refresh's disk {:.1} MiB over its run layer's",
        info["actual-size"].as_f64().unwrap_or(0.0) / 1048576.0
    );
}

fn bake_all_twice_at_once(tier: &Tier) -> tempfile::TempDir {
    let copy = project_copy(tier);
    let set_promote = |stack: &str, promote: &str| {
        let p = copy.path().join(format!("images/stacks/{stack}.yml"));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("promote: []"), "{text}");
        std::fs::write(
            &p,
            text.replace("promote: []", &format!("promote: [{promote}]")),
        )
        .unwrap();
    };
    // web keeps its promotions off: the other thread may still be baking its stack layer
    set_promote("mini", "tick");
    let mini = copy.path().join("images/stacks/mini.yml");
    let text = std::fs::read_to_string(&mini).unwrap();
    // a check that cannot pass: the run that bakes mini's layer fails its verification
    std::fs::write(
        &mini,
        format!("{text}vars:\n  tick_sleep: 1\nchecks:\n  - file: /var/lib/never-written\n    timeout: 2s\n"),
    )
    .unwrap();
    // `sleep never` fails for real, in the role's own task
    std::fs::write(
        copy.path().join("images/stacks/broken.yml"),
        "image: debian12\nroles: [tick]\npromote: [tick]\nvars:\n  tick_sleep: never\n",
    )
    .unwrap();
    let all_cmd = |out: &Path| {
        let mut c = tier.cmd(&["bake", "--all", "-j", "2", "--verify", "--json"]);
        c.current_dir(copy.path())
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(Stdio::piped());
        c
    };
    let started = Instant::now();
    let (out_a, out_b) = (
        tier.store.path().join("all-a.json"),
        tier.store.path().join("all-b.json"),
    );
    let a = all_cmd(&out_a).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let b = all_cmd(&out_b).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (err_a, err_b) = (
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
    );
    eprintln!(
        "e2e: two concurrent bake --all took {:.1}s\n--- run A ---\n{err_a}\n--- run B ---\n{err_b}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(a.status.code(), Some(1), "{err_a}");
    assert_eq!(b.status.code(), Some(1), "{err_b}");
    let ra: parbake::bake::all::AllReport =
        serde_json::from_str(&std::fs::read_to_string(&out_a).unwrap()).unwrap();
    let rb: parbake::bake::all::AllReport =
        serde_json::from_str(&std::fs::read_to_string(&out_b).unwrap()).unwrap();
    eprintln!("{}", parbake::bake::all::summary_text(&ra));
    eprintln!("{}", parbake::bake::all::summary_text(&rb));
    use parbake::bake::all::Outcome;
    let outcome = |r: &parbake::bake::all::AllReport, name: &str| {
        r.layers.iter().find(|l| l.name == name).unwrap().clone()
    };
    for r in [&ra, &rb] {
        assert_eq!(r.layers.len(), 3, "{r:?}");
        assert_eq!(outcome(r, "debian12").outcome, Outcome::Cached);
        let broken = outcome(r, "debian12-broken");
        assert_eq!(broken.outcome, Outcome::Failed);
        assert!(
            broken
                .error
                .as_deref()
                .unwrap_or("")
                .contains("role `tick` failed"),
            "{broken:?}"
        );
    }
    // mini: exactly one of the runs baked it; the other waited for the lock, then hit the cache
    let (wa, wb) = (outcome(&ra, "debian12-mini"), outcome(&rb, "debian12-mini"));
    let outcomes = [wa.outcome, wb.outcome];
    assert!(
        outcomes.contains(&Outcome::Baked) && outcomes.contains(&Outcome::Cached),
        "{outcomes:?}"
    );
    let waiter = if wa.outcome == Outcome::Cached {
        &err_a
    } else {
        &err_b
    };
    assert!(
        waiter.contains("is being baked by another run; waiting for it")
            && waiter.contains("cached (baked by another run meanwhile)"),
        "{waiter}"
    );
    assert_eq!(wa.why, ["first bake of layer debian12-mini"]);
    // --verify: the run that baked mini's layer verified the stack on it (one more small VM)
    // and its check failed, named; the broken stack's verification is skipped in both, as its
    // layer failed
    let (baker, other) = if wa.outcome == Outcome::Baked {
        (&ra, &rb)
    } else {
        (&rb, &ra)
    };
    let verdict = |r: &parbake::bake::all::AllReport, stack: &str| {
        r.verified
            .iter()
            .find(|v| v.stack == stack)
            .map(|v| v.outcome.clone())
    };
    assert_eq!(
        verdict(baker, "mini").as_deref(),
        Some("failed"),
        "{:?}",
        baker.verified
    );
    let why = baker.verified.iter().find(|v| v.stack == "mini").unwrap();
    assert!(
        why.error
            .as_deref()
            .unwrap_or("")
            .contains("check file /var/lib/never-written failed"),
        "{why:?}"
    );
    // and publish refuses it, saying why
    let out = tier
        .cmd(&["publish", "mini"])
        .current_dir(copy.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("its last verification failed") && err.contains("never-written"),
        "{err}"
    );
    assert_eq!(verdict(other, "mini"), None, "{:?}", other.verified);
    for r in [&ra, &rb] {
        assert_eq!(verdict(r, "broken").as_deref(), Some("skipped"));
        assert_eq!(
            verdict(r, "web"),
            None,
            "web's layer was cached: {:?}",
            r.verified
        );
    }
    copy
}

/// One step's time, for the tier's figures (docs/testing.md).
fn step(name: &str, t: Instant) {
    eprintln!("e2e step: {name}: {:.1}s", t.elapsed().as_secs_f64());
}

/// The native tier's steps in order (native.rs); returns the roles the nothing-promoted web
/// launch ran at boot.
fn native_tier(tier: &Tier) -> Vec<String> {
    let t = Instant::now();
    let all = native::launch_nothing_promoted(tier);
    step("native: launch web, nothing promoted, HTTP", t);
    let t = Instant::now();
    native::reboot_mid_role(tier);
    step("native: reboot mid-role", t);
    let t = Instant::now();
    native::check_pass_and_fail(tier);
    step("native: check pass and fail", t);
    let t = Instant::now();
    native::launch_timeout_names_its_role(tier);
    step("native: launch timeout", t);
    let t = Instant::now();
    native::failed_role_redacts_its_secret(tier);
    step("native: failed role, secret redacted", t);
    let t = Instant::now();
    native::verify_publish_launch_published_and_rollback(tier);
    step("native: verify, publish, launch --published, rollback", t);
    let t = Instant::now();
    native::interrupt_a_native_launch(tier);
    step("native: Ctrl-C in a launch", t);
    all
}

#[test]
fn e2e_bake_launch_promote_cache_interrupt_and_bake_all_on_the_local_vm() {
    if !enabled() {
        return;
    }
    let tier = Tier {
        store: tempfile::Builder::new()
            .prefix("parbake-e2e-")
            .tempdir_in(repo().join("target"))
            .unwrap(),
        project: project(),
    };

    // 1. bake the web stack's base: every later step starts from it
    let t = Instant::now();
    let bake = tier.json(&["bake", "web", "--json"]);
    eprintln!(
        "e2e step: bake the base layer (VM): {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(bake["layers"][0]["outcome"], "baked");
    let roles: Vec<&str> = bake["layers"][0]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"base") && roles.contains(&"users"),
        "{roles:?}"
    );

    // 2-5. two threads, one per core; bakes and launches share the store:
    //      - the web stack's layer bakes (Packer, an overlay) and launches in a real VM, with
    //        HTTP through the port forward;
    //      - the native tier (native.rs) on the base layer: the web stack with nothing
    //        promoted (every role at boot, offline, HTTP from the host), a reboot mid-role,
    //        check pass and fail, the launch timeout, a failed role's secret, verify,
    //        publish, `launch --published` and rollback, Ctrl-C in a launch; then the bakes
    //        only a VM shows: an interrupted bake, two concurrent `bake --all --verify` runs,
    //        and a launch role edited: a payload refresh (Packer), verified natively on it
    let started = Instant::now();
    let (fewer, (all, copy)) = std::thread::scope(|s| {
        let web = s.spawn(|| {
            let t = Instant::now();
            let fewer = bake_and_launch_promoted(&tier);
            step("bake the stack layer and launch it promoted (VM)", t);
            fewer
        });
        let rest = s.spawn(|| {
            let all = native_tier(&tier);
            let t = Instant::now();
            interrupt_a_bake(&tier);
            step("interrupt a bake (VM)", t);
            let t = Instant::now();
            let copy = bake_all_twice_at_once(&tier);
            step("two concurrent bake --all (VM)", t);
            let t = Instant::now();
            refresh_after_a_launch_role_edit(&tier);
            step("payload refresh (VM) and its native verify", t);
            (all, copy)
        });
        (join(web), join(rest))
    });
    assert!(fewer.len() < all.len(), "{fewer:?} {all:?}");
    eprintln!(
        "e2e: the two threads took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    native::assert_nothing_left(&tier);
    let runs: Vec<PathBuf> = std::fs::read_dir(tier.store.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(runs.is_empty(), "VM run dirs left: {runs:?}");

    // the same bake again is a cache hit that never starts Packer
    let marker = tier.store.path().join("packer-was-run");
    let fake = tier.store.path().join("fake-packer");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = tier
        .cmd(&PROMOTED)
        .env("PARBAKE_PACKER", &fake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        again["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["outcome"] == "cached"),
        "{again}"
    );
    assert!(!marker.exists(), "a cache hit ran Packer");

    // without the broken stack, the unchanged tree is a no-op that never starts Packer
    std::fs::remove_file(copy.path().join("images/stacks/broken.yml")).unwrap();
    let started = Instant::now();
    let out = tier
        .cmd(&["bake", "--all", "--json"])
        .current_dir(copy.path())
        .env("PARBAKE_PACKER", &fake)
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: parbake::bake::all::AllReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r.counts.cached, 2, "{r:?}");
    assert!(!marker.exists(), "an unchanged bake --all ran Packer");
    eprintln!(
        "e2e: bake --all on the unchanged tree: {took:.2}s\n{}",
        parbake::bake::all::summary_text(&r)
    );

    // the store: prune keeps the minimal stack's published layer, the web stack's layer and
    //    its parent; a dry run removes nothing
    let out = tier
        .cmd(&["prune", "--target", "qemu", "--keep", "1", "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("e2e: prune --target qemu --keep 1 --dry-run:\n{text}");
    assert!(!text.contains("would remove"), "{text}");
    let images = tier.json(&["images", "--target", "qemu", "--json"]);
    let published = images
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["published"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    assert!(published.iter().any(|p| p == "mini v1 default"), "{images}");
}

/// The native tier alone, on copies of a store and a project `make e2e` baked (the base layer
/// is all it boots): `PARBAKE_E2E_NATIVE_FROM=STORE:PROJECT`, for a quick loop while working
/// on `launch --container` or the launch mechanics. Does nothing without it.
#[test]
fn e2e_native_tier_on_a_baked_store() {
    let Ok(from) = std::env::var("PARBAKE_E2E_NATIVE_FROM") else {
        eprintln!("e2e native: skipped (set PARBAKE_E2E_NATIVE_FROM=STORE:PROJECT)");
        return;
    };
    let (store, project) = from.split_once(':').expect("STORE:PROJECT");
    let tier = Tier {
        store: tempfile::Builder::new()
            .prefix("parbake-e2e-")
            .tempdir_in(repo().join("target"))
            .unwrap(),
        project: tempfile::Builder::new()
            .prefix("parbake-e2e-project-")
            .tempdir_in(repo().join("target"))
            .unwrap(),
    };
    for (from, to) in [(store, tier.store.path()), (project, tier.project.path())] {
        let cp = Command::new("cp")
            .arg("-a")
            .arg(format!("{from}/."))
            .arg(to)
            .status()
            .unwrap();
        assert!(cp.success());
    }
    let started = Instant::now();
    native_tier(&tier);
    step("the native tier", started);
    native::assert_nothing_left(&tier);
}
