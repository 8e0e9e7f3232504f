//! The end-to-end tier on the local target (`make e2e`, run by CI): a real base disk, real
//! Packer bakes and launches with the generated user-data. Two tiers in one test, since the
//! native one boots what the VM one bakes:
//! - the VM tier keeps what needs a kernel: the Packer bakes (the base layer, one overlay stack
//!   layer, a payload refresh), Ctrl-C in a bake (Packer's builder VM must stop), a team's
//!   repository on Debian 13 (`init --from site.yml`, then two concurrent `bake --all
//!   --verify --container`: real builder VMs racing for one layer's lock, verified natively),
//!   and one real qemu launch of a promoted stack with HTTP through the port forward (kernel,
//!   initramfs, NIC, DHCP, the live sysctls);
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

/// A team's repository (tests/fixtures/team-repo) on Debian 13, as a new user brings it:
/// `init --from site.yml`, `vendor`, then two `bake --all --verify --container` at once in the
/// tier's store. They race for the one layer both stacks share (the Debian 13 base, baked by
/// Packer in a VM): exactly one bakes it while the other waits for its lock and then finds it
/// cached. The baker verifies both stacks natively: web's check passes, workers' check cannot,
/// and `publish workers` refuses, saying why. Then web launches natively with its roles and
/// check. Returns the team's repository for the no-op run at the end.
fn team_repo_bakes_all_twice_at_once(tier: &Tier) -> crate::team_repo::Team {
    let team = crate::team_repo::team().with_store(tier.store.path());
    team.parbake(&["init", "--base", "debian-13", "--from", "site.yml"])
        .run();
    let edit = |rel: &str, f: &dyn Fn(String) -> String| {
        let p = team.root.join(rel);
        std::fs::write(&p, f(std::fs::read_to_string(&p).unwrap())).unwrap();
    };
    edit("images/debian13.yml", &|t| {
        t.replace("basic: []", "basic: [common]")
    });
    // the team's check: the message of the day the launch writes; and one that cannot pass
    edit("images/stacks/web.yml", &|t| {
        t + "checks:\n  - file: /etc/motd\n    contains: Managed by the platform team.\n"
    });
    edit("images/stacks/workers.yml", &|t| {
        t + "checks:\n  - file: /var/lib/never-written\n    timeout: 2s\n"
    });
    with_a_real_collection_role_staged_by_the_stack(&team);
    team.parbake(&["vendor"]).run();
    let plan = team.parbake(&["plan", "web", "--json"]).json();
    let sops = plan["launch"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == REAL_ROLE)
        .unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(sops["offline_reason"], "offline: packages staged", "{sops}");
    let frontend = plan["launch"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "frontend");
    assert_eq!(
        frontend.map(|r| r["offline_reason"].clone()),
        Some("offline: packages staged".into()),
        "{plan}"
    );
    let all = |out: &Path| {
        let mut c = team
            .parbake(&[
                "bake",
                "--all",
                "-j",
                "2",
                "--verify",
                "--container",
                "--json",
            ])
            .command();
        c.stdout(std::fs::File::create(out).unwrap())
            .stderr(Stdio::piped());
        c
    };
    let started = Instant::now();
    let (out_a, out_b) = (
        tier.store.path().join("team-a.json"),
        tier.store.path().join("team-b.json"),
    );
    let a = all(&out_a).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let b = all(&out_b).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (err_a, err_b) = (
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
    );
    eprintln!(
        "e2e: two concurrent bake --all of the team's repository took {:.1}s\n--- run A ---\n{err_a}\n--- run B ---\n{err_b}",
        started.elapsed().as_secs_f64()
    );
    // workers' verification fails the run that verified it; the other run baked nothing
    let read = |p: &Path| -> parbake::bake::all::AllReport {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (ra, rb) = (read(&out_a), read(&out_b));
    eprintln!("{}", parbake::bake::all::summary_text(&ra));
    eprintln!("{}", parbake::bake::all::summary_text(&rb));
    use parbake::bake::all::Outcome;
    let base = |r: &parbake::bake::all::AllReport| {
        assert_eq!(r.layers.len(), 1, "both stacks share the base layer: {r:?}");
        r.layers[0].clone()
    };
    let (la, lb) = (base(&ra), base(&rb));
    assert_eq!(la.name, "debian13");
    let outcomes = [la.outcome, lb.outcome];
    assert!(
        outcomes.contains(&Outcome::Baked) && outcomes.contains(&Outcome::Cached),
        "{outcomes:?}"
    );
    let (baker, other, baker_out, waiter_err) = if la.outcome == Outcome::Baked {
        (&ra, &rb, &a, &err_b)
    } else {
        (&rb, &ra, &b, &err_a)
    };
    assert!(
        waiter_err.contains("is being baked by another run; waiting for it")
            && waiter_err.contains("cached (baked by another run meanwhile)"),
        "{waiter_err}"
    );
    assert_eq!(baker_out.status.code(), Some(1), "workers' check fails");
    let other_code = if la.outcome == Outcome::Baked { &b } else { &a };
    assert_eq!(
        other_code.status.code(),
        Some(0),
        "the waiter verified nothing"
    );
    assert!(other.verified.is_empty(), "{:?}", other.verified);
    let verdict = |stack: &str| baker.verified.iter().find(|v| v.stack == stack).unwrap();
    assert_eq!(verdict("web").outcome, "passed", "{:?}", baker.verified);
    let workers = verdict("workers");
    assert_eq!(workers.outcome, "failed");
    assert!(
        workers
            .error
            .as_deref()
            .unwrap_or("")
            .contains("check file /var/lib/never-written failed"),
        "{workers:?}"
    );
    // publish refuses the failed verification, saying why
    let r = team.parbake(&["publish", "workers"]).code(1).run();
    assert!(
        r.stderr.contains("its last verification failed") && r.stderr.contains("never-written"),
        "{}",
        r.stderr
    );
    // the launch a user runs: web's launch roles at boot, offline, and its check
    let t = Instant::now();
    let launch = team
        .parbake(&["launch", "web", "--container", "--timeout", "900", "--json"])
        .json();
    eprintln!(
        "e2e: team web launch (native) took {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(launch["accelerator"], "nspawn", "{launch}");
    assert_eq!(launch["status"]["state"], "done", "{launch}");
    let ok = |list: &str| -> Vec<String> {
        launch["status"][list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "ok")
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ok("roles"),
        ["webserver", "acme.motd", REAL_ROLE, "frontend"],
        "{launch}"
    );
    assert_eq!(ok("checks").len(), 5, "{launch}");
    let took = |name: &str| {
        launch["status"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["duration_s"].clone())
    };
    eprintln!(
        "e2e: offline, {REAL_ROLE} took {:?} s and frontend (acme.kit.assets, Recommends) {:?} s",
        took(REAL_ROLE),
        took("frontend")
    );
    team
}

/// A role parbake's authors did not write, from a collection Debian's `ansible` package ships:
/// community.sops's `_install_age` installs `age` with `ansible.builtin.package` (no list
/// refresh). Of the Debian collections' roles that install Debian packages, it is the one that
/// needs nothing else from the network (zabbix_agent refreshes the lists on every run).
const REAL_ROLE: &str = "community.sops._install_age";

/// Vendors Debian's community.sops and the fixture collection acme.kit beside the team's
/// ansible.posix, and adds to the web stack community.sops's role and the team's `frontend`
/// (a wrapper including acme.kit.assets, which installs with apt's default Recommends), with
/// their staging declared in the stack file only, one package each, and checks for what they
/// install. The native launch runs with no network (`--private-network`).
fn with_a_real_collection_role_staged_by_the_stack(team: &crate::team_repo::Team) {
    let debian =
        repo().join(".tools/ansible-collections/usr/lib/python3/dist-packages/ansible_collections");
    crate::util::copy_dir(
        &debian.join("community/sops"),
        &team.root.join("collections/src/community.sops"),
    );
    crate::collection_roles::built_kit(&team.root.join("collections/src"));
    std::fs::write(
        team.root.join("collections/requirements.yml"),
        "---\ncollections:\n  - name: ./collections/src/ansible.posix\n    type: dir\n  - name: ./collections/src/community.sops\n    type: dir\n  - name: ./collections/src/acme-kit-1.0.0.tar.gz\n    type: file\n",
    )
    .unwrap();
    // the team's own wrapper around the fixture collection's `assets` (apt, Recommends on)
    let frontend = team.root.join("roles/frontend");
    std::fs::create_dir_all(frontend.join("tasks")).unwrap();
    std::fs::write(
        frontend.join("tasks/main.yml"),
        "- name: Site assets\n  ansible.builtin.include_role:\n    name: acme.kit.assets\n",
    )
    .unwrap();
    let path = team.root.join("images/stacks/web.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut stack: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let roles = stack["roles"].as_sequence_mut().unwrap();
    roles.push(REAL_ROLE.into());
    roles.push("frontend".into());
    // one package each, as the roles name them; staging takes libjs-jquery's Recommends
    // (javascript-common) because acme.kit.assets installs with apt's default
    stack["staging"] = serde_yaml::from_str(&format!(
        "{REAL_ROLE}: {{apt: [age]}}\nacme.kit.assets: {{apt: [libjs-jquery, tzdata]}}"
    ))
    .unwrap();
    // Debian 12's community.sops 1.6.2 templates `run_once` to `omit` unless this is true,
    // which ansible-core 2.19 (Debian 13's) refuses; true delegates to the instance itself
    if !stack["vars"].is_mapping() {
        stack["vars"] = serde_yaml::Value::Mapping(Default::default());
    }
    stack["vars"]["sops_install_on_localhost"] = true.into();
    stack["checks"].as_sequence_mut().unwrap().extend(
        [
            "command: [/usr/bin/age, --version]",
            "file: /etc/apache2/conf-available/javascript-common.conf",
            "command: [/usr/bin/test, -L, /etc/localtime]",
            "file: /etc/acme-assets\ncontains: jquery",
        ]
        .map(|c| serde_yaml::from_str::<serde_yaml::Value>(c).unwrap()),
    );
    std::fs::write(&path, serde_yaml::to_string(&stack).unwrap()).unwrap();
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
    let (fewer, (all, team)) = std::thread::scope(|s| {
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
            let team = team_repo_bakes_all_twice_at_once(&tier);
            step("team repository on Debian 13: two concurrent bake --all --verify --container (VM), native launch", t);
            let t = Instant::now();
            refresh_after_a_launch_role_edit(&tier);
            step("payload refresh (VM) and its native verify", t);
            (all, team)
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

    // the team's unchanged tree is a no-op that never starts Packer
    let started = Instant::now();
    let out = team
        .parbake(&["bake", "--all", "--json"])
        .env("PARBAKE_PACKER", &fake)
        .run();
    let took = started.elapsed().as_secs_f64();
    let r: parbake::bake::all::AllReport = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r.counts.cached, 1, "{r:?}");
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

/// The team step of `make e2e` alone (`make e2e-team`, PARBAKE_E2E_TEAM=1), in a store of
/// its own: a quick loop while working on `init`, project discovery or Debian 13.
#[test]
fn e2e_team_repo_alone() {
    if std::env::var("PARBAKE_E2E_TEAM").as_deref() != Ok("1") {
        eprintln!("e2e_team_repo_alone: skipped (set PARBAKE_E2E_TEAM=1, as `make e2e-team` does)");
        return;
    }
    let in_target = |prefix: &str| {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(repo().join("target"))
            .unwrap()
    };
    let tier = Tier {
        store: in_target("parbake-e2e-"),
        project: in_target("parbake-e2e-project-"),
    };
    let t = Instant::now();
    team_repo_bakes_all_twice_at_once(&tier);
    step("team repository on Debian 13", t);
}
