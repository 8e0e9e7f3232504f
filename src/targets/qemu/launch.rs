//! run: launch a stack on the local VM target. Boots the stack's top layer (a qcow2 overlay on
//! it) with a NoCloud seed whose user-data is exactly what `parbake userdata` prints, follows
//! the serial console until the runner reports, and prints per-role durations.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Project;
use crate::contract::events::{Event, Timings};
use crate::contract::status::{after_marker, parse_status_line, BootStatus, LOG_LINE_PREFIX};
use crate::error::{Error, Result};
use crate::plan::{Plan, PlanRequest, Target};
use crate::process::{Background, Cmd};
use crate::progress::Progress;
use crate::render;
use crate::store::{now_epoch, LayerRecord, Store};
use crate::targets::launch::{record_launch, KeptVm, LaunchOptions, LaunchRecord, LaunchReport};
use crate::targets::qemu;

/// Kills the VM and removes its run directory unless kept.
struct RunGuard {
    dir: PathBuf,
    pid: Option<u32>,
    keep: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Some(pid) = self.pid {
            // SAFETY: signalling the process group of a qemu we started.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGTERM);
            }
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            let start = Instant::now();
            while proc_dir.exists() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if proc_dir.exists() {
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // reading rule exception (src/fsread.rs): the kernel's random device, a fixed-size read
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    hex::encode(bytes)
}

/// What one local launch boots: a stack's top layer from the store and the exact user-data.
/// Planned from the project (`launch`, `verify`), or read from a publish record
/// (`launch --published`), which pins both.
pub struct Boot {
    pub stack: String,
    pub image: String,
    pub layer_index: u8,
    pub layer: String,
    pub layer_hash: String,
    /// How many roles the user-data runs at launch (progress only).
    pub launch_roles: usize,
    pub user_data: Vec<u8>,
    pub record: LayerRecord,
}

impl Boot {
    /// The stack's current plan: its top layer must be baked.
    pub fn planned(project: &Project, req: &PlanRequest, no_roles: bool) -> Result<Boot> {
        let store = Store::for_project(&project.root);
        let (plan, record) = baked_plan(project, req, &store)?;
        let ud = user_data(&plan, no_roles)?;
        let top = plan.top();
        Ok(Boot {
            stack: plan.stack.clone(),
            image: plan.image.clone(),
            layer_index: top.index,
            layer: top.name.clone(),
            layer_hash: top.hash.clone(),
            launch_roles: if no_roles { 0 } else { plan.launch.len() },
            user_data: ud.bytes,
            record,
        })
    }

    /// What the stack's publish record points at (`launch --published`): its layer, which must
    /// still be in the store, and its user-data byte for byte, whatever the project says now.
    pub fn published(project: &Project, stack: &str) -> Result<(Boot, u32)> {
        let store = Store::for_project(&project.root);
        let record = crate::published::load(&store, stack)?.ok_or_else(|| {
            Error::user(format!(
                "stack {stack} has never been published on the local target"
            ))
            .with_hint(format!(
                "verify and publish it first: parbake verify {stack} && parbake publish {stack}"
            ))
        })?;
        let p = record.current();
        let layer = store.layer(&p.layer_hash).ok_or_else(|| {
            Error::user(format!(
                "the published layer {} ({}) of stack {stack} is no longer in the store",
                p.layer,
                &p.layer_hash[..12]
            ))
            .with_hint(format!("publish the stack again (parbake verify {stack} && parbake publish {stack}), or roll back: parbake rollback {stack}"))
        })?;
        let boot = Boot {
            stack: stack.to_string(),
            image: p.image.clone(),
            layer_index: p.layer_index,
            layer: p.layer.clone(),
            layer_hash: p.layer_hash.clone(),
            launch_roles: p.launch_roles,
            user_data: crate::published::user_data(&store, stack, p)?,
            record: layer,
        };
        Ok((boot, p.version))
    }

    pub(super) fn short_hash(&self) -> &str {
        &self.layer_hash[..12.min(self.layer_hash.len())]
    }
}

/// Starts qemu in the run directory, its output in `qemu.out`; the run's guard kills it.
fn start_vm(
    run: &mut Run,
    record: &LayerRecord,
    source: Option<&crate::config::QemuSource>,
    vm: &Vm,
) -> Result<(Background, u32)> {
    let out = run.dir.join("qemu.out");
    let output = std::fs::File::create(&out).map_err(|e| Error::io("create", &out, e))?;
    let handle = Background::start(
        "qemu-system-x86_64",
        qemu_args(record, source, vm),
        &run.dir,
        output,
    )
    .map_err(|e| Error::io("start qemu-system-x86_64", &run.dir, e))?;
    let pid = handle.pid().unwrap_or(0);
    run.guard.pid = Some(pid);
    Ok((handle, pid))
}

/// Boots `boot` and follows its console until the runner reports.
pub fn boot_qemu(
    project: &Project,
    boot: &Boot,
    opts: &LaunchOptions,
) -> Result<(LaunchReport, Option<Error>)> {
    let mut progress = Progress::new(opts.quiet, opts.verbose);
    let store = Store::for_project(&project.root);
    store.ensure_dirs()?;
    let record = &boot.record;
    let mut run = prepare_run(&store, boot)?;
    let (accel, why) = qemu::accelerator(&store.root, &record.kernel, &record.initrd);
    progress.line(&format!("accelerator: {why}"));
    let vm = Vm::new(&run, accel, opts.offline)?;
    progress.line(&format!(
        "launching {} from layer {} {} ({}) as {}: {} launch role(s)",
        boot.stack,
        boot.layer_index,
        boot.layer,
        boot.short_hash(),
        run.instance_id,
        boot.launch_roles
    ));
    let started = Instant::now();
    let source = project
        .images
        .get(&boot.image)
        .and_then(|i| i.def.sources.qemu.as_ref());
    let (handle, pid) = start_vm(&mut run, record, source, &vm)?;
    let user = source.map(|q| q.ssh_user.as_str()).unwrap_or("debian");
    announce_vm(&mut progress, opts, &kept_vm(pid, &run.dir, &vm, user));
    let label = format!("{} {}", boot.stack, run.instance_id);
    let watch = Watch {
        vm: &vm,
        run: &run,
        store: &store,
        stack: &boot.stack,
        timeout: opts.timeout,
        started,
        label,
    };
    let (status, log_tail) = follow_console(&handle, &watch, &mut progress)?;
    let boot_to_ready = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    progress.finish();
    let kept_log = store.logs().join(format!(
        "launch-{}-{}.serial.log",
        boot.stack, run.instance_id
    ));
    let _ = std::fs::copy(&vm.serial, &kept_log);
    let kept = if opts.keep {
        run.guard.keep = true;
        Some(kept_vm(pid, &run.dir, &vm, user))
    } else {
        None
    };
    let report = LaunchReport {
        stack: boot.stack.clone(),
        target: Target::Qemu,
        layer: boot.layer.clone(),
        layer_hash: boot.layer_hash.clone(),
        accelerator: vm.accel.clone(),
        instance_id: run.instance_id.clone(),
        boot_to_ready_s: boot_to_ready,
        userdata_sha256: crate::plan::sha256_hex(&boot.user_data),
        status,
        serial_log: kept_log.clone(),
        ssh_port: vm.ssh_port,
        http_port: vm.http_port,
        kept,
    };
    record_in_ledger(&store, boot, &report, opts.no_roles);
    if report.status.state != "done" {
        let failed = launch_failed(&report, &log_tail, &kept_log);
        return Ok((report, Some(failed)));
    }
    drop(run);
    Ok((report, None))
}

/// The stack's user-data, or with `--no-roles` the same with no launch roles (the floor).
fn user_data(plan: &Plan, no_roles: bool) -> Result<render::UserData> {
    if no_roles {
        let mut floor = plan.clone();
        floor.launch.clear();
        return Ok(render::userdata::render(&floor)?);
    }
    Ok(render::userdata::render(plan)?)
}

/// Adds the launch to the timing ledger and to the booted layer's own launches.
pub(super) fn record_in_ledger(store: &Store, boot: &Boot, report: &LaunchReport, no_roles: bool) {
    record_launch(&LaunchRecord {
        store_root: &store.root,
        layer_dir: Some(store.layer_dir(&boot.layer_hash)),
        target: Target::Qemu,
        image: &boot.image,
        stack: &boot.stack,
        layer: &boot.layer,
        layer_hash: &boot.layer_hash,
        accelerator: &report.accelerator,
        boot_to_ready_s: report.boot_to_ready_s,
        status: &report.status,
        no_roles,
    });
}

/// The plan with the real base-disk identity, and the store's record of its top layer.
fn baked_plan(project: &Project, req: &PlanRequest, store: &Store) -> Result<(Plan, LayerRecord)> {
    let plan = crate::targets::plan_for(project, req, |image| {
        qemu::peek_identity(image).ok_or_else(|| {
            Error::user("the base disk image is not built yet")
                .with_hint(format!("bake first: {}", req.bake_command()))
        })
    })?;
    let top = plan.top();
    let record = store.layer(&top.hash).ok_or_else(|| {
        Error::user(format!(
            "layer {} {} ({}) is not baked",
            top.index,
            top.name,
            top.short_hash()
        ))
        .with_hint(format!("bake it: {}", req.bake_command()))
    })?;
    Ok((plan, record))
}

/// One launch's run directory: its instance id, the guard that cleans it up, the SSH key,
/// the NoCloud seed and the overlay disk on the top layer.
struct Run {
    instance_id: String,
    dir: PathBuf,
    guard: RunGuard,
}

fn prepare_run(store: &Store, boot: &Boot) -> Result<Run> {
    let instance_id = format!("i-{}", random_hex(8));
    let dir = store.runs().join(format!("{}-{}", boot.stack, instance_id));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let guard = RunGuard {
        dir: dir.clone(),
        pid: None,
        keep: false,
    };
    let public = crate::process::ssh_keygen(&dir.join("id_ed25519"), "parbake-launch")?;
    // user-data: exactly `parbake userdata`; the key travels in meta-data, as EC2 key pairs do
    crate::write::write_file(&dir.join("user-data"), &boot.user_data)?;
    let meta = serde_json::json!({
        "instance-id": instance_id,
        "local-hostname": boot.stack,
        "public-keys": [public.trim()],
    });
    crate::write::write_file(
        &dir.join("meta-data"),
        serde_yaml::to_string(&meta)
            .expect("meta-data serializes")
            .as_bytes(),
    )?;
    Cmd::new("make the NoCloud seed", "cloud-localds")
        .args(["seed.img", "user-data", "meta-data"])
        .cwd(&dir)
        .run_checked()?;
    let disk = store.layer_dir(&boot.layer_hash).join("disk.qcow2");
    // a stack layer's disk reads through its parent's: a missing link is named before a boot
    super::disk::chain(store, &boot.layer_hash)?;
    Cmd::new("create the VM's overlay disk", "qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&disk)
        .arg("overlay.qcow2")
        .cwd(&dir)
        .run_checked()?;
    Ok(Run {
        instance_id,
        dir,
        guard,
    })
}

/// How to reach the VM while it boots (with --keep: a user can watch the launch, a test can
/// reboot it), and whether it is offline.
fn announce_vm(progress: &mut Progress, opts: &LaunchOptions, reach: &KeptVm) {
    if opts.keep {
        progress.line(&format!("VM started: {} ; {}", reach.ssh, reach.http));
    }
    if opts.offline {
        progress.line("offline: the VM reaches nothing but its port forwards (restrict=on)");
    }
}

/// The VM's ports, console file and accelerator.
struct Vm {
    ssh_port: u16,
    http_port: u16,
    serial: PathBuf,
    accel: String,
    /// qemu's `restrict=on`: the guest reaches nothing but the host's port forwards.
    offline: bool,
}

impl Vm {
    /// A VM for the run: two free loopback ports, the console log in the run directory.
    fn new(run: &Run, accel: String, offline: bool) -> Result<Vm> {
        Ok(Vm {
            ssh_port: qemu::free_port()?,
            http_port: qemu::free_port()?,
            serial: run.dir.join("serial.log"),
            accel,
            offline,
        })
    }
}

/// qemu-system-x86_64's arguments: the overlay and the seed, sized as the image's qemu
/// source says, with SSH and HTTP forwarded to loopback.
fn qemu_args(
    record: &LayerRecord,
    source: Option<&crate::config::QemuSource>,
    vm: &Vm,
) -> Vec<std::ffi::OsString> {
    let (accel_arg, cpu) = if vm.accel == "kvm" {
        ("kvm", "host")
    } else {
        ("tcg,thread=multi", "max")
    };
    let (cpus, memory, append) = match source {
        Some(q) => (q.cpus, q.memory_mb, q.kernel_append.clone()),
        None => (2, 1024, crate::config::model::DEFAULT_KERNEL_APPEND.into()),
    };
    let (ssh_port, http_port) = (vm.ssh_port, vm.http_port);
    let restrict = if vm.offline { "restrict=on," } else { "" };
    let args: Vec<String> = vec![
        "-accel".into(),
        accel_arg.into(),
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        cpus.to_string(),
        "-m".into(),
        memory.to_string(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-kernel".into(),
        record.kernel.display().to_string(),
        "-initrd".into(),
        record.initrd.display().to_string(),
        "-append".into(),
        append,
        "-drive".into(),
        "file=overlay.qcow2,if=virtio,format=qcow2".into(),
        "-drive".into(),
        "file=seed.img,if=virtio,format=raw,readonly=on".into(),
        "-netdev".into(),
        format!(
            "user,id=n0,{restrict}hostfwd=tcp:127.0.0.1:{ssh_port}-:22,hostfwd=tcp:127.0.0.1:{http_port}-:80"
        ),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
        "-serial".into(),
        format!("file:{}", vm.serial.display()),
    ];
    args.into_iter().map(Into::into).collect()
}

/// What following one launch's console needs.
struct Watch<'a> {
    vm: &'a Vm,
    run: &'a Run,
    store: &'a Store,
    stack: &'a str,
    timeout: Duration,
    started: Instant,
    label: String,
}

/// Follows the serial console until the runner's `parbake-status` line: progress from its
/// events, the log tail it prints on failure. Fails if qemu exits, on timeout or Ctrl-C.
fn follow_console(
    handle: &Background,
    w: &Watch<'_>,
    progress: &mut Progress,
) -> Result<(BootStatus, Vec<String>)> {
    let (vm, label) = (w.vm, w.label.as_str());
    let mut offset = 0u64;
    let mut partial = String::new();
    let mut timings = Timings::default();
    let mut log_tail: Vec<String> = Vec::new();
    loop {
        if crate::interrupt::interrupted() {
            return Err(Error::Interrupted);
        }
        for line in qemu::read_new_lines(&vm.serial, &mut offset, &mut partial) {
            progress.raw(&line);
            if let Some(ev) = Event::from_line(&line) {
                timings.push(&ev);
                if let Some((role, task)) = &timings.current {
                    progress.step(
                        label,
                        &format!("role {} | {task}", role.as_deref().unwrap_or("(facts)")),
                    );
                }
            } else if let Some(text) = after_marker(&line, LOG_LINE_PREFIX) {
                log_tail.push(text.to_string());
            } else if let Some(s) = parse_status_line(&line) {
                return Ok((s, log_tail));
            } else if timings.current.is_none()
                && (line.contains("login:") || line.contains("Cloud-init"))
            {
                // (once the runner's events flow, cloud-init's own lines are not the boot)
                progress.step(label, "booting");
            }
        }
        if let Ok(Some(status)) = handle.try_wait() {
            // reading rule exception (src/fsread.rs): qemu's output in parbake's private run dir
            let text = std::fs::read_to_string(w.run.dir.join("qemu.out")).unwrap_or_default();
            return Err(Error::user(format!(
                "qemu exited ({}) before the launch finished: {}",
                status,
                text.trim()
            ))
            .with_hint(format!("the console log is {}", vm.serial.display())));
        }
        if w.started.elapsed() > w.timeout {
            let kept =
                w.store
                    .logs()
                    .join(format!("launch-{}-{}.serial.log", w.stack, now_epoch()));
            let _ = std::fs::copy(&vm.serial, &kept);
            return Err(Error::user(format!(
                "the launch did not report within {}s",
                w.timeout.as_secs()
            ))
            .with_hint(format!(
                "the console log is kept at {}; raise --timeout on slow (TCG) hosts",
                kept.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How to reach a VM left running with `--keep`.
fn kept_vm(pid: u32, dir: &std::path::Path, vm: &Vm, user: &str) -> KeptVm {
    KeptVm {
        pid,
        dir: dir.to_path_buf(),
        ssh: format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null {user}@127.0.0.1",
            dir.join("id_ed25519").display(),
            vm.ssh_port
        ),
        http: format!("http://127.0.0.1:{}/", vm.http_port),
        stop: None,
    }
}

/// The error for a launch whose runner reported a failure: the role, the runner's error, the
/// log tail, how to reach a kept VM, and where the console log is.
pub(super) fn launch_failed(
    report: &LaunchReport,
    log_tail: &[String],
    kept_log: &std::path::Path,
) -> Error {
    let mut e = Error::user(format!(
        "launch of {} failed{}: {}",
        report.stack,
        report.status.failed_at(),
        report.status.error.clone().unwrap_or_default()
    ));
    if !log_tail.is_empty() {
        e = e.with_hint(format!(
            "last lines of /var/log/parbake/launch.log:\n  | {}",
            log_tail.join("\n  | ")
        ));
    }
    if let Some(k) = &report.kept {
        let stop = k
            .stop
            .clone()
            .unwrap_or_else(|| format!("kill {} && rm -rf {}", k.pid, k.dir.display()));
        e = e.with_hint(format!(
            "the instance is still running (--keep) to look into: {}; stop it with: {stop}",
            k.ssh
        ));
    }
    e.with_hint(format!("the console log is {}", kept_log.display()))
}
