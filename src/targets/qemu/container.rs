//! A native launch on the local target (`launch --container`): the stack's top layer booted in
//! systemd-nspawn instead of a VM. A throwaway raw copy of the layer's disk (the store is never
//! changed) is loop-mounted in the launch's run dir; the stack's exact user-data and a
//! meta-data are its NoCloud seed; the layer's own systemd, cloud-init, `parbake-launch.service`
//! and `parbake-ready.target` run as they do in a VM. A reboot inside is a restart on the same
//! root. The boot contract is read as from a VM: the runner's console lines, and its
//! `status.json` in the root. No kernel, initramfs or real NIC takes part (the VM tier shows
//! those).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::contract::events::{Event, Timings};
use crate::contract::status::{parse_status_line, BootStatus};
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::process::{Background, Cmd};
use crate::progress::Progress;
use crate::store::Store;
use crate::targets::launch::{ContainerNet, KeptVm, LaunchOptions, LaunchReport};

use super::launch::{launch_failed, random_hex, record_in_ledger, Boot};

/// systemd-nspawn's exit status when the container asked for a reboot.
const REBOOT_EXIT: i32 = 133;
/// The runner's status in the container's root.
const STATUS_JSON: &str = "var/lib/parbake/status.json";
const MAX_STATUS_BYTES: u64 = 4 << 20;
/// How long the runner's console status line may follow its final status.json.
const CONSOLE_GRACE: Duration = Duration::from_secs(5);

/// What a native launch came to: booted (its report, and the error of a failed launch), or
/// not possible here, with why (the caller falls back to the VM).
pub enum Outcome {
    Booted(Box<LaunchReport>, Option<Error>),
    Fallback(String),
}

/// Why a native boot cannot run on this host, or None: it needs root and systemd-nspawn.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions
    if unsafe { libc::geteuid() } != 0 {
        return Some("a native boot (systemd-nspawn) needs root".into());
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("systemd-nspawn").is_file()))
        .unwrap_or(false);
    (!found).then(|| {
        "systemd-nspawn is not installed (Debian's systemd-container; `make setup` installs it)"
            .into()
    })
}

/// The running container and everything it holds; dropped, it halts the container, unmounts
/// its root (which detaches the loop device), deletes its network namespace and removes the
/// run dir with the disk copy, unless kept.
struct Native {
    dir: PathBuf,
    root: PathBuf,
    mounted: bool,
    netns: Option<Link>,
    handle: Option<Background>,
    keep: bool,
    /// With --keep: say how to enter the container each time it starts.
    announce: bool,
}

/// A private link to the host: a veth pair, its container end in a network namespace.
struct Link {
    netns: String,
    host_if: String,
    host_ip: String,
    guest_ip: String,
}

impl Drop for Native {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Some(h) = self.handle.take() {
            halt(&h);
        }
        if let Some(l) = &self.netns {
            Cmd::new("delete the container's network namespace", "ip")
                .args(["netns", "del", &l.netns])
                .run_cleanup();
        }
        if self.mounted && !unmount(&self.root) {
            // never a recursive delete into a root still mounted
            crate::printer::stderr::line(format!(
                "parbake: warning: {} could not be unmounted; remove {} once it is",
                self.root.display(),
                self.dir.display()
            ));
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM to systemd-nspawn halts the container cleanly; after 30 s its PID 1 (and so its
/// PID namespace) and nspawn are killed.
fn halt(h: &Background) {
    let Some(pid) = h.pid() else { return };
    let leader = leader_pid(pid);
    // SAFETY: signals to a systemd-nspawn we started and to the container it started
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let start = Instant::now();
    while matches!(h.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if matches!(h.try_wait(), Ok(None)) {
        unsafe {
            if let Some(l) = leader {
                libc::kill(l as libc::pid_t, libc::SIGKILL);
            }
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
        let _ = h.wait();
    }
}

/// Unmounts the container's root (the loop device, set to clear itself, is detached with it);
/// lazily when something still holds it. Runs after Ctrl-C too.
fn unmount(root: &Path) -> bool {
    Cmd::new("unmount the container's root", "umount")
        .arg(root)
        .run_cleanup()
        || Cmd::new("unmount the container's root (lazily)", "umount")
            .arg("-l")
            .arg(root)
            .run_cleanup()
}

/// The container's PID 1 as the host sees it: systemd-nspawn's child that is PID 1 in its own
/// PID namespace (before that, the child is nspawn's own helper).
fn leader_pid(nspawn: u32) -> Option<u32> {
    // reading rule exception (src/fsread.rs): procfs, small kernel-made files
    let text = std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).ok()?;
    text.split_whitespace().find_map(|child| {
        let status = std::fs::read_to_string(format!("/proc/{child}/status")).ok()?;
        let ns = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
        let ids: Vec<&str> = ns.split_whitespace().collect();
        (ids.len() > 1 && ids.last() == Some(&"1")).then(|| child.parse().ok())?
    })
}

/// Boots `boot` in a container and follows it until the runner reports.
pub fn boot_container(
    project: &crate::config::Project,
    boot: &Boot,
    opts: &LaunchOptions,
    net: ContainerNet,
) -> Result<Outcome> {
    let mut progress = Progress::new(opts.quiet, opts.verbose);
    let store = Store::for_project(&project.root);
    store.ensure_dirs()?;
    let instance_id = format!("i-{}", random_hex(8));
    let mut native = prepare(&store, boot, &instance_id)?;
    native.announce = opts.keep;
    if let Err(why) = mount_root(&native) {
        return Ok(Outcome::Fallback(why));
    }
    native.mounted = true;
    write_seed(&native.root, boot, &instance_id, net)?;
    if net == ContainerNet::HostLink {
        native.netns = Some(make_link(&instance_id)?);
    }
    progress.line(&format!(
        "launching {} natively (systemd-nspawn) from layer {} {} ({}) as {}: {} launch role(s), {}",
        boot.stack,
        boot.layer_index,
        boot.layer,
        boot.short_hash(),
        instance_id,
        boot.launch_roles,
        match &native.netns {
            None => "no network".to_string(),
            Some(l) => format!("a link to the host only ({} at {})", l.guest_ip, l.host_ip),
        }
    ));
    let started = Instant::now();
    start(&mut native)?;
    announce(&native, &progress);
    let label = format!("{} {}", boot.stack, instance_id);
    let status = follow(&mut native, &label, opts.timeout, started, &mut progress);
    let boot_to_ready = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    progress.finish();
    let kept_log = store
        .logs()
        .join(format!("launch-{}-{}.console.log", boot.stack, instance_id));
    let _ = std::fs::copy(native.dir.join("console.log"), &kept_log);
    let status = status.map_err(|e| match e {
        Error::Interrupted => e,
        e => e.with_hint(format!("the console log is kept at {}", kept_log.display())),
    })?;
    let kept = opts.keep.then(|| kept_container(&mut native));
    let report = LaunchReport {
        stack: boot.stack.clone(),
        target: Target::Qemu,
        layer: boot.layer.clone(),
        layer_hash: boot.layer_hash.clone(),
        accelerator: "nspawn".into(),
        instance_id,
        boot_to_ready_s: boot_to_ready,
        userdata_sha256: crate::plan::sha256_hex(&boot.user_data),
        status,
        serial_log: kept_log.clone(),
        ssh_port: 0,
        http_port: if native.netns.is_some() { 80 } else { 0 },
        kept,
    };
    record_in_ledger(&store, boot, &report, opts.no_roles);
    // today's runner prints no role output on the console (issue 21): the error names the
    // launch log, which stays in the root only with --keep
    let failed = (report.status.state != "done").then(|| launch_failed(&report, &[], &kept_log));
    Ok(Outcome::Booted(Box::new(report), failed))
}

/// The run dir under the store's `runs/` and a raw copy of the layer's disk in it (a stack
/// layer's overlay chain flattened).
fn prepare(store: &Store, boot: &Boot, instance_id: &str) -> Result<Native> {
    let dir = store.runs().join(format!("{}-{}", boot.stack, instance_id));
    std::fs::create_dir_all(dir.join("root")).map_err(|e| Error::io("create", &dir, e))?;
    let native = Native {
        root: dir.join("root"),
        dir,
        mounted: false,
        netns: None,
        handle: None,
        keep: false,
        announce: false,
    };
    super::disk::chain(store, &boot.layer_hash)?;
    let disk = store.layer_dir(&boot.layer_hash).join("disk.qcow2");
    Cmd::new("copy the layer's disk for the container", "qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&disk)
        .arg("disk.raw")
        .cwd(&native.dir)
        .run_checked()?;
    Ok(native)
}

/// Loop-mounts the disk copy on the root; the error says why it could not be (no loop
/// devices, a filesystem the kernel will not mount).
fn mount_root(n: &Native) -> std::result::Result<(), String> {
    let out = Cmd::new("mount the layer's disk copy", "mount")
        .args(["-o", "loop"])
        .arg(n.dir.join("disk.raw"))
        .arg(&n.root)
        .run_checked();
    out.map(|_| ()).map_err(|e| {
        let tail = e.output_tail().unwrap_or_default();
        format!(
            "the layer's disk could not be loop-mounted ({e}){}",
            tail.trim_end()
        )
    })
}

/// The NoCloud seed in the root: the stack's exact user-data and a meta-data. With a host
/// link, cloud-init leaves the network alone (the link is set up before the boot).
fn write_seed(root: &Path, boot: &Boot, instance_id: &str, net: ContainerNet) -> Result<()> {
    let meta = serde_json::json!({
        "instance-id": instance_id,
        "local-hostname": boot.stack,
    });
    let meta = serde_yaml::to_string(&meta).expect("meta-data serializes");
    let seed = Path::new("var/lib/cloud/seed/nocloud");
    write_inside(root, &seed.join("user-data"), &boot.user_data)?;
    write_inside(root, &seed.join("meta-data"), meta.as_bytes())?;
    // no login prompt on the console the launch is read from (it can start a runner's line)
    mask_unit(root, "console-getty.service")?;
    if net == ContainerNet::HostLink {
        write_inside(
            root,
            Path::new("etc/cloud/cloud.cfg.d/99-parbake-container.cfg"),
            b"network:\n  config: disabled\n",
        )?;
    }
    Ok(())
}

/// Masks a unit in the root (a link to /dev/null in /etc/systemd/system).
fn mask_unit(root: &Path, unit: &str) -> Result<()> {
    let link = dirs_inside(root, Path::new("etc/systemd/system"))?.join(unit);
    match std::os::unix::fs::symlink("/dev/null", &link) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(Error::io("mask", link, e)),
        _ => Ok(()),
    }
}

/// `rel` under `root` as a directory, made where missing; a symlink or other file on the way
/// (the image's own, which could point at the host) is refused.
fn dirs_inside(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::user(format!(
                    "{} in the layer's root is not a directory",
                    at.display()
                ))
                .with_hint("the paths parbake writes in the root (the cloud-init seed, /etc/systemd/system) must be plain directories"))
            }
            Err(_) => std::fs::create_dir(&at).map_err(|e| Error::io("create", &at, e))?,
        }
    }
    Ok(at)
}

/// Writes `rel` under `root`, creating its directories; a symlink on the way (the image's
/// own, which could point at the host) is refused.
fn write_inside(root: &Path, rel: &Path, bytes: &[u8]) -> Result<()> {
    dirs_inside(root, rel.parent().unwrap_or(Path::new("")))?;
    let path = root.join(rel);
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Error::io("write", &path, e))?;
    f.write_all(bytes).map_err(|e| Error::io("write", &path, e))
}

/// A network namespace with one veth pair: the host's end and the container's (`eth0`), a
/// /30 each side, no route beyond it.
fn make_link(instance_id: &str) -> Result<Link> {
    let id = instance_id.trim_start_matches("i-");
    let octets = u32::from_str_radix(&id[..4], 16).unwrap_or(0);
    let (a, b) = ((octets >> 8) & 0xff, octets & 0xfc);
    let link = Link {
        netns: format!("parbake-{id}"),
        host_if: format!("pb{}", &id[..8.min(id.len())]),
        host_ip: format!("10.213.{a}.{}", b + 1),
        guest_ip: format!("10.213.{a}.{}", b + 2),
    };
    let ip = |purpose: &str, args: &[&str]| {
        Cmd::new(purpose.to_string(), "ip")
            .args(args.iter().copied())
            .run_checked()
            .map(|_| ())
    };
    let (ns, hif) = (link.netns.as_str(), link.host_if.as_str());
    let host_cidr = format!("{}/30", link.host_ip);
    let guest_cidr = format!("{}/30", link.guest_ip);
    ip(
        "make the container's network namespace",
        &["netns", "add", ns],
    )?;
    let steps: [(&str, Vec<&str>); 6] = [
        (
            "make the container's link to the host",
            vec![
                "link", "add", hif, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        ),
        (
            "address the host's end",
            vec!["addr", "add", &host_cidr, "dev", hif],
        ),
        ("bring up the host's end", vec!["link", "set", hif, "up"]),
        (
            "address the container's end",
            vec!["-n", ns, "addr", "add", &guest_cidr, "dev", "eth0"],
        ),
        (
            "bring up the container's end",
            vec!["-n", ns, "link", "set", "eth0", "up"],
        ),
        (
            "bring up the container's loopback",
            vec!["-n", ns, "link", "set", "lo", "up"],
        ),
    ];
    for (purpose, args) in steps {
        if let Err(e) = ip(purpose, &args) {
            let _ = ip(
                "delete the container's network namespace",
                &["netns", "del", ns],
            );
            return Err(e.into());
        }
    }
    Ok(link)
}

/// Starts systemd-nspawn on the root in its own process group, its console into
/// `console.log`. No system bus here: `--register=no --keep-unit`.
fn start(n: &mut Native) -> Result<()> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--register=no".into(),
        "--keep-unit".into(),
        "--console=read-only".into(),
        // the image's own /etc/localtime, as on a VM: nspawn's default binds the host's over
        // it, and tzdata's postinst then cannot replace it ("Device or resource busy")
        "--timezone=off".into(),
        "-q".into(),
        "-D".into(),
        n.root.clone().into(),
        "-b".into(),
    ];
    match &n.netns {
        None => args.push("--private-network".into()),
        Some(l) => args.push(format!("--network-namespace-path=/run/netns/{}", l.netns).into()),
    }
    let handle = Background::start(
        "systemd-nspawn",
        args,
        &n.dir,
        append(&n.dir.join("console.log"))?,
    )
    .map_err(|e| Error::io("start systemd-nspawn", &n.dir, e))?;
    n.handle = Some(handle);
    Ok(())
}

/// With --keep, how to enter the container just started (a test reboots it this way): its PID 1
/// is systemd-nspawn's child, there within a few seconds.
fn announce(n: &Native, progress: &Progress) {
    let Some(pid) = n.handle.as_ref().and_then(|h| h.pid()) else {
        return;
    };
    if !n.announce {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        match leader_pid(pid) {
            Some(l) => break l,
            None if Instant::now() > deadline => return,
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    progress.line(&format!(
        "container started: nsenter --target {leader} --all ; root {}",
        n.root.display()
    ));
}

fn append(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

/// Follows the console (progress from the runner's events) and the runner's status.json until
/// the launch is done or failed. A reboot inside restarts the container on the same root.
fn follow(
    n: &mut Native,
    label: &str,
    timeout: Duration,
    started: Instant,
    progress: &mut Progress,
) -> Result<BootStatus> {
    let console = n.dir.join("console.log");
    let (mut offset, mut partial) = (0u64, String::new());
    let mut timings = Timings::default();
    let mut final_at: Option<Instant> = None;
    loop {
        if crate::interrupt::interrupted() {
            return Err(Error::Interrupted);
        }
        for line in super::read_new_lines(&console, &mut offset, &mut partial) {
            progress.raw(&line);
            if let Some(ev) = Event::from_line(&line) {
                timings.push(&ev);
                if let Some((role, task)) = &timings.current {
                    let role = role.as_deref().unwrap_or("(facts)");
                    progress.step(label, &format!("role {role} | {task}"));
                }
            } else if let Some(s) = parse_status_line(&line) {
                return Ok(s);
            }
        }
        // the console line is what a VM gives (parbake's sentences, no role output); the
        // runner writes status.json just before it, so it gets a few seconds to come
        match (final_status(&n.root), final_at) {
            (Some(_), None) => final_at = Some(Instant::now()),
            (Some(s), Some(t)) if t.elapsed() > CONSOLE_GRACE => return Ok(public(s)),
            _ => {}
        }
        exited(n, progress)?;
        if started.elapsed() > timeout {
            return Err(Error::user(format!(
                "the launch did not report within {}s",
                timeout.as_secs()
            ))
            .with_hint("raise --timeout, or look at the console log"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A container that exited: restarted when it asked for a reboot, an error otherwise.
fn exited(n: &mut Native, progress: &mut Progress) -> Result<()> {
    let Some(h) = &n.handle else { return Ok(()) };
    let Ok(Some(status)) = h.try_wait() else {
        return Ok(());
    };
    if status.code() == Some(REBOOT_EXIT) {
        progress.line("the container rebooted: starting it again on the same root");
        start(n)?;
        announce(n, progress);
        return Ok(());
    }
    n.handle = None;
    Err(Error::user(format!(
        "systemd-nspawn exited ({status}) before the launch finished"
    )))
}

/// status.json as the console line would carry it: without the roles' own messages, which
/// may hold role output (redacted, but the console never shows any).
fn public(mut s: BootStatus) -> BootStatus {
    if s.state == "failed" {
        let at = s.failed_at();
        s.error = Some(format!(
            "the launch failed{at}; its output is in /var/log/parbake/launch.log (root only)"
        ));
    }
    for r in &mut s.roles {
        r.error = None;
    }
    s
}

/// The runner's status.json once it is final (`done` or `failed`).
fn final_status(root: &Path) -> Option<BootStatus> {
    let bytes = crate::fsread::read(root, &root.join(STATUS_JSON), MAX_STATUS_BYTES).ok()?;
    let s: BootStatus = serde_json::from_slice(&bytes).ok()?;
    (s.state == "done" || s.state == "failed").then_some(s)
}

/// How to reach a container left running with `--keep`, and how to stop it.
fn kept_container(n: &mut Native) -> KeptVm {
    n.keep = true;
    let pid = n.handle.as_ref().and_then(|h| h.pid());
    let pid = pid.unwrap_or(0);
    let dir = n.dir.display().to_string();
    let q = |s: &str| shell_escape::escape(s.into()).into_owned();
    let root = q(&n.root.display().to_string());
    let mut stop =
        format!("kill {pid}; while kill -0 {pid} 2>/dev/null; do sleep 1; done; umount {root}");
    if let Some(l) = &n.netns {
        stop.push_str(&format!("; ip netns del {}", l.netns));
    }
    stop.push_str(&format!("; rm -rf {}", q(&dir)));
    KeptVm {
        pid,
        dir: n.dir.clone(),
        ssh: format!("nsenter --target {} --all", leader_pid(pid).unwrap_or(0)),
        http: match &n.netns {
            Some(l) => format!("http://{}/", l.guest_ip),
            None => "(no network: launch with --host-link to reach it)".into(),
        },
        stop: Some(stop),
    }
}
