//! run: launch a stack on EC2: RunInstances with the AMI and the user-data that fits it, tagged,
//! then wait until the instance is running.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceStateName;
use serde::Serialize;

use super::consistency::plan_for_target;
use super::ec2::{Ec2, Endpoint, InstanceRequest};
use crate::bake::round;
use crate::config::{AwsSource, Project};
use crate::contract::status::BootStatus;
use crate::error::{Error, Result};
use crate::plan::{Plan, PlanRequest};
use crate::render;
use crate::runtime::{runtime, Threads};

#[derive(Debug, Clone, Serialize)]
pub struct AwsLaunchReport {
    pub stack: String,
    pub region: String,
    pub ami: String,
    pub instance_id: String,
    pub state: String,
    pub user_data_bytes: usize,
    pub launch_roles: Vec<String>,
    pub seconds_to_running: f64,
    /// With --wait-ready: the runner's status, read from the console output.
    pub status: Option<crate::contract::status::BootStatus>,
    pub seconds_to_ready: Option<f64>,
}

pub fn launch_aws(
    project: &Project,
    req: &PlanRequest,
    ami: Option<&str>,
    timeout: Duration,
    wait_ready: bool,
    quiet: bool,
) -> Result<AwsLaunchReport> {
    let (plan, ami, user_data, spec) = prepare(project, req, ami)?;
    let launch = Launch::new(project, &plan, &ami, timeout, quiet, spec);
    runtime(Threads::Current)?.block_on(launch.run(&user_data, wait_ready))
}

/// What `verify --target aws` reports: the launch, and the verdict it tagged on the AMI.
#[derive(Debug, Clone, Serialize)]
pub struct AwsVerifyReport {
    pub stack: String,
    pub region: String,
    pub ami: String,
    pub instance_id: String,
    pub passed: bool,
    pub userdata_sha256: String,
    pub seconds_to_ready: f64,
    pub status: BootStatus,
    /// The tags set on the AMI.
    pub tags: Vec<(String, String)>,
}

/// `verify --target aws`: launches the stack's top AMI with its user-data, waits for the
/// runner's status on the console, terminates the instance whatever happened, and tags the
/// AMI with the verdict: `parbake:verified-at`, `parbake:verify-result`,
/// `parbake:verify-seconds` and, when it passed, `parbake:verified-userdata` (the sha256 of
/// the user-data that passed; a failure with that user-data removes it). The boot goes into
/// the timing ledger. A launch that never reports is an error, and tags nothing. Ctrl-C stops
/// the wait, terminates the instance and exits 130; the instance carries
/// `parbake:expires-at`, so `gc` finds it if parbake is killed before it could terminate it.
pub fn verify_aws(
    project: &Project,
    req: &PlanRequest,
    timeout: Duration,
    quiet: bool,
) -> Result<(AwsVerifyReport, Option<Error>)> {
    let (plan, ami, user_data, spec) = prepare(project, req, None)?;
    let launch = Launch::new(project, &plan, &ami, timeout, quiet, spec).disposable();
    runtime(Threads::Current)?.block_on(launch.verify(&user_data))
}

/// The stack's plan on EC2, the AMI to start (the top layer's, or `ami`), the user-data that
/// fits it, and the digest of its launch spec (what the runner reports as `spec_digest`).
fn prepare(
    project: &Project,
    req: &PlanRequest,
    ami: Option<&str>,
) -> Result<(Plan, String, Vec<u8>, String)> {
    let (plan, ami) = plan_for_target(project, req, ami)?;
    let user_data = render::userdata::render(&plan)?;
    let spec = crate::plan::sha256_hex(user_data.spec_json.as_bytes());
    Ok((plan, ami, user_data.bytes, spec))
}

/// One launch on EC2: what to start, and how long to wait for it.
struct Launch<'a> {
    project: &'a Project,
    plan: &'a Plan,
    src: &'a AwsSource,
    ami: &'a str,
    timeout: Duration,
    /// A verify's instance: tagged to expire, so `gc` collects it if it outlives parbake.
    disposable: bool,
    progress: crate::progress::Progress,
    /// sha256 of the launch spec the user-data writes: a status line that names another is
    /// not this launch's.
    spec_digest: String,
}

/// How long after its wait times out an instance still waited on counts as left behind.
const EXPIRY_MARGIN: Duration = Duration::from_secs(15 * 60);

/// The tag `gc` reads: after that epoch second, an instance still carrying it is a leftover.
const EXPIRES_AT: &str = "parbake:expires-at";

impl<'a> Launch<'a> {
    fn new(
        project: &'a Project,
        plan: &'a Plan,
        ami: &'a str,
        timeout: Duration,
        quiet: bool,
        spec_digest: String,
    ) -> Launch<'a> {
        let src = project.images[&plan.image]
            .def
            .sources
            .aws
            .as_ref()
            .expect("plan_for_target checked the source");
        Launch {
            project,
            plan,
            src,
            ami,
            timeout,
            disposable: false,
            progress: crate::progress::Progress::lines(quiet, false),
            spec_digest,
        }
    }

    fn disposable(self) -> Launch<'a> {
        Launch {
            disposable: true,
            ..self
        }
    }

    /// Names the instance for a second Ctrl-C, which exits without terminating it.
    fn held(&self, instance_id: &str) -> crate::interrupt::HeldGuard {
        crate::interrupt::HeldGuard::new(format!(
            "instance {instance_id} in {} ({} {}); `parbake gc` terminates it once its {EXPIRES_AT} passes",
            self.src.region,
            if self.disposable { "verify" } else { "launch" },
            self.plan.stack
        ))
    }

    /// A progress line: `[  12s] web i-0abc running`.
    fn say(&self, started: Instant, instance_id: &str, what: &str) {
        self.progress.line(&format!(
            "[{:>5.0}s] {} {instance_id} {what}",
            started.elapsed().as_secs_f64(),
            self.plan.stack
        ));
    }

    /// Sleeps `d`, or fails with [`Error::Interrupted`] as soon as Ctrl-C or SIGTERM arrives.
    async fn pause(&self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if crate::interrupt::interrupted() {
                return Err(Error::Interrupted);
            }
            tokio::time::sleep(Duration::from_millis(250).min(until - Instant::now())).await;
        }
        if crate::interrupt::interrupted() {
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    /// Starts the instance, waits until it runs and, with `wait_ready`, until the runner
    /// reports; records the boot and fails if the launch failed.
    async fn run(&self, user_data: &[u8], wait_ready: bool) -> Result<AwsLaunchReport> {
        let ec2 = Ec2::connect(&self.src.region, &Endpoint::from_env()).await;
        let started = Instant::now();
        let instance_id = self.start(&ec2, user_data).await?;
        let held = self.held(&instance_id);
        let state = self.wait_running(&ec2, &instance_id, started).await?;
        // it stands: the user's instance now, not a leftover for gc
        ec2.untag(&instance_id, &[EXPIRES_AT]).await?;
        drop(held);
        let seconds_to_running = round(started.elapsed().as_secs_f64());
        let status = if wait_ready {
            Some(self.wait_ready(&ec2, &instance_id, started).await?)
        } else {
            None
        };
        let seconds_to_ready = status
            .as_ref()
            .map(|_| round(started.elapsed().as_secs_f64()));
        if let (Some(s), Some(secs)) = (status.as_ref(), seconds_to_ready) {
            self.record(s, secs);
            self.check_boot(&instance_id, s)?;
        }
        Ok(AwsLaunchReport {
            stack: self.plan.stack.clone(),
            region: self.src.region.clone(),
            ami: self.ami.to_string(),
            instance_id,
            state,
            user_data_bytes: user_data.len(),
            launch_roles: self.plan.launch.iter().map(|r| r.name.clone()).collect(),
            seconds_to_running,
            seconds_to_ready,
            status,
        })
    }

    /// A launch that is torn down whatever happens, with its verdict tagged on the AMI.
    async fn verify(&self, user_data: &[u8]) -> Result<(AwsVerifyReport, Option<Error>)> {
        let ec2 = Ec2::connect(&self.src.region, &Endpoint::from_env()).await;
        let started = Instant::now();
        let instance_id = self.start(&ec2, user_data).await?;
        let _held = self.held(&instance_id);
        self.say(
            started,
            &instance_id,
            &format!("launched from {} to verify", self.ami),
        );
        let outcome = async {
            self.wait_running(&ec2, &instance_id, started).await?;
            self.wait_ready(&ec2, &instance_id, started).await
        }
        .await;
        let gone = ec2.terminate(std::slice::from_ref(&instance_id)).await;
        if gone.is_ok() {
            self.say(started, &instance_id, "terminated");
        }
        let status = match (outcome, gone) {
            (Err(Error::Interrupted), Ok(())) => return Err(Error::Interrupted),
            (Err(Error::Interrupted), Err(e)) => {
                return Err(e.with_hint(format!(
                    "interrupted; terminate instance {instance_id} by hand, or `parbake gc` once its parbake:expires-at passes"
                )))
            }
            (Err(e), _) => {
                return Err(e.with_hint(format!(
                    "instance {instance_id} was terminated; no verdict was recorded on {}",
                    self.ami
                )))
            }
            (Ok(_), Err(e)) => {
                return Err(e.with_hint(format!(
                    "terminate instance {instance_id} by hand; no verdict was recorded on {}",
                    self.ami
                )))
            }
            (Ok(s), Ok(())) => s,
        };
        let secs = round(started.elapsed().as_secs_f64());
        self.record(&status, secs);
        let failed = self.check_boot(&instance_id, &status).err();
        let sha = crate::plan::sha256_hex(user_data);
        let passed = failed.is_none();
        let mut tags = vec![
            (
                "parbake:verified-at".to_string(),
                crate::store::now_epoch().to_string(),
            ),
            (
                "parbake:verify-result".to_string(),
                if passed { "passed" } else { "failed" }.to_string(),
            ),
            ("parbake:verify-seconds".to_string(), format!("{secs:.1}")),
        ];
        let ami = ec2.image(self.ami).await?;
        let (set, remove) =
            super::publish::verdict_tags(&ami.tags, &sha, passed, crate::store::now_epoch());
        tags.extend(set);
        if !remove.is_empty() {
            let keys: Vec<&str> = remove.iter().map(String::as_str).collect();
            ec2.untag(self.ami, &keys).await?;
        }
        ec2.tag(self.ami, &tags).await?;
        Ok((
            AwsVerifyReport {
                stack: self.plan.stack.clone(),
                region: self.src.region.clone(),
                ami: self.ami.to_string(),
                instance_id,
                passed,
                userdata_sha256: sha,
                seconds_to_ready: secs,
                status,
                tags,
            },
            failed,
        ))
    }

    /// RunInstances: the AMI with the user-data, tagged; the instance id.
    async fn start(&self, ec2: &Ec2, user_data: &[u8]) -> Result<String> {
        ec2.run_instance(&InstanceRequest {
            image_id: self.ami,
            instance_type: &self.src.instance_type,
            subnet_id: self.src.subnet_id.clone(),
            user_data,
            tags: &self.tags(),
            http_tokens: self.src.imds.http_tokens(),
            instance_profile: self.src.instance_profile.as_deref(),
        })
        .await
    }

    /// The instance's tags: its name, the stack, image and layer it runs, its purpose, and when
    /// it counts as left behind (`parbake:expires-at`, which `gc` reads). Every instance starts
    /// with it, so one that parbake was killed waiting on is found; a launch removes it once
    /// the instance runs, a verify terminates its instance instead.
    fn tags(&self) -> Vec<(String, String)> {
        let plan = self.plan;
        let ttl = crate::testing::switches()
            .builder_ttl_seconds
            .unwrap_or((self.timeout + EXPIRY_MARGIN).as_secs());
        let purpose = if self.disposable { "verify" } else { "launch" };
        let mut tags = vec![
            ("Name".into(), format!("parbake-{}", plan.stack)),
            ("parbake:stack".into(), plan.stack.clone()),
            ("parbake:image".into(), plan.image.clone()),
            ("parbake:layer-hash".into(), plan.top().hash.clone()),
            ("parbake:purpose".into(), purpose.into()),
            (
                EXPIRES_AT.into(),
                (crate::store::now_epoch() + ttl).to_string(),
            ),
        ];
        with_user_tags(&mut tags, self.project, plan);
        tags
    }

    /// Polls the instance's state until it is running; its final state.
    async fn wait_running(&self, ec2: &Ec2, instance_id: &str, started: Instant) -> Result<String> {
        let mut state = String::new();
        while started.elapsed() < self.timeout {
            let name = ec2.instance_state(instance_id).await?;
            state = name
                .as_ref()
                .map(|n| n.as_str().to_string())
                .unwrap_or_default();
            match name {
                Some(InstanceStateName::Running) => {
                    self.say(started, instance_id, "running");
                    break;
                }
                Some(InstanceStateName::Pending) | None => {
                    self.pause(Duration::from_secs(2)).await?
                }
                Some(other) => {
                    return Err(Error::user(format!(
                        "instance {instance_id} went {} instead of running",
                        other.as_str()
                    ))
                    .with_hint("see the instance's state reason in the EC2 console"))
                }
            }
        }
        if state != "running" {
            return Err(Error::user(format!(
                "instance {instance_id} is not running after {}s",
                self.timeout.as_secs()
            )));
        }
        Ok(state)
    }

    /// Polls the console output until the runner prints `parbake-status {json}` there.
    async fn wait_ready(
        &self,
        ec2: &Ec2,
        instance_id: &str,
        started: Instant,
    ) -> Result<BootStatus> {
        self.say(
            started,
            instance_id,
            "waiting for the runner's status on the console",
        );
        let mut next_note = Instant::now() + Duration::from_secs(60);
        let mut ignored_other = false;
        loop {
            let text = ec2.console_output(instance_id).await?;
            let status = text
                .lines()
                .rev()
                .find_map(crate::contract::status::parse_status_line);
            match status {
                // a runner that names no digest (older images) is taken at its word
                Some(s)
                    if s.spec_digest
                        .as_deref()
                        .is_none_or(|d| d == self.spec_digest) =>
                {
                    return Ok(s)
                }
                Some(s) if !ignored_other => {
                    ignored_other = true;
                    self.say(
                        started,
                        instance_id,
                        &format!(
                            "ignoring a status line for another launch spec ({}), not this one's ({})",
                            crate::plan::short(s.spec_digest.as_deref().unwrap_or_default()),
                            crate::plan::short(&self.spec_digest)
                        ),
                    );
                }
                _ => {}
            }
            if started.elapsed() >= self.timeout {
                return Err(Error::user(format!(
                    "instance {instance_id} is running but its launch did not report within {}s",
                    self.timeout.as_secs()
                ))
                .with_hint("the runner prints `parbake-status {...}` on the console when done; raise --timeout, or read /var/lib/parbake/status.json on the instance"));
            }
            if Instant::now() >= next_note {
                self.say(
                    started,
                    instance_id,
                    "still waiting for the runner's status",
                );
                next_note += Duration::from_secs(60);
            }
            self.pause(Duration::from_secs(5)).await?;
        }
    }

    /// The boot's per-role timings into the local ledger.
    fn record(&self, status: &BootStatus, boot_to_ready_s: f64) {
        let store = crate::store::Store::for_project(&self.project.root);
        let plan = self.plan;
        crate::targets::launch::record_launch(&crate::targets::launch::LaunchRecord {
            store_root: &store.root,
            layer_dir: None,
            target: crate::plan::Target::Aws,
            image: &plan.image,
            stack: &plan.stack,
            layer: &plan.top().name,
            layer_hash: &plan.top().hash,
            accelerator: &format!("ec2 {}", self.src.region),
            boot_to_ready_s,
            status,
            no_roles: false,
        });
    }

    /// A launch whose runner did not finish `done` is a failure naming the failed role or check.
    fn check_boot(&self, instance_id: &str, status: &BootStatus) -> Result<()> {
        if status.state == "done" {
            return Ok(());
        }
        Err(Error::user(format!(
            "launch of {} on {instance_id} failed{}: {}",
            self.plan.stack,
            status.failed_at(),
            status.error.clone().unwrap_or_default()
        ))
        .with_hint("the log is /var/log/parbake/launch.log on the instance"))
    }
}

/// The user's tags (the image's, the stack's over them) on an instance parbake starts: added
/// to parbake's own, whose `parbake:` keys config keeps them from touching; a user `Name`
/// replaces parbake's.
fn with_user_tags(tags: &mut Vec<(String, String)>, project: &Project, plan: &Plan) {
    let user = crate::config::aws_settings::user_tags(project, &plan.image, Some(&plan.stack));
    tags.retain(|(k, _)| !user.contains_key(k));
    tags.extend(user);
}
