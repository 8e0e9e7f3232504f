//! run: launch a stack on EC2: RunInstances with the AMI and the user-data that fits it, tagged,
//! then wait until the instance is running.

use std::time::{Duration, Instant};

use base64::Engine;
use serde::Serialize;

use super::consistency::plan_for_target;
use super::ec2::{Ec2, Endpoint};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::PlanRequest;
use crate::render;

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
) -> Result<AwsLaunchReport> {
    let (plan, ami_id) = plan_for_target(project, req, ami)?;
    let ud = render::userdata::render(&plan)?;
    let image = &project.images[&plan.image];
    let src = image
        .def
        .sources
        .aws
        .as_ref()
        .expect("plan_for_target checked the source");
    let rt = super::runtime()?;
    rt.block_on(async {
        use aws_sdk_ec2::types::{InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification};
        let ec2 = Ec2::connect(&src.region, &Endpoint::from_env()).await;
        let tags = [
            ("Name", format!("parbake-{}", plan.stack)),
            ("parbake:stack", plan.stack.clone()),
            ("parbake:image", plan.image.clone()),
            ("parbake:layer-hash", plan.top().hash.clone()),
        ];
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(v).build()).collect()))
            .build();
        let started = Instant::now();
        let resp = ec2
            .client
            .run_instances()
            .image_id(&ami_id)
            .instance_type(InstanceType::from(src.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .user_data(base64::engine::general_purpose::STANDARD.encode(&ud.bytes))
            .tag_specifications(spec)
            .set_subnet_id(src.subnet_id.clone())
            .send()
            .await
            .map_err(|e| {
                Error::user(format!("EC2 RunInstances failed: {}", aws_sdk_ec2::error::DisplayErrorContext(e)))
                    .with_hint("check the instance type, subnet and your permissions (README: IAM permissions)")
            })?;
        let instance_id = resp.instances().first().and_then(|i| i.instance_id()).unwrap_or_default().to_string();
        let mut state = String::new();
        while started.elapsed() < timeout {
            let d = ec2
                .client
                .describe_instances()
                .instance_ids(&instance_id)
                .send()
                .await
                .map_err(|e| Error::user(format!("EC2 DescribeInstances failed: {}", aws_sdk_ec2::error::DisplayErrorContext(e))))?;
            let name = d
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find_map(|i| i.state().and_then(|s| s.name()).cloned());
            state = name.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default();
            match name {
                Some(InstanceStateName::Running) => break,
                Some(InstanceStateName::Pending) | None => tokio::time::sleep(Duration::from_secs(2)).await,
                Some(other) => {
                    return Err(Error::user(format!("instance {instance_id} went {} instead of running", other.as_str()))
                        .with_hint("see the instance's state reason in the EC2 console"))
                }
            }
        }
        if state != "running" {
            return Err(Error::user(format!("instance {instance_id} is not running after {}s", timeout.as_secs())));
        }
        let seconds_to_running = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        let mut status = None;
        if wait_ready {
            // the runner prints `parbake-status {json}` on the console; EC2 serves the console
            // output base64-encoded, some minutes behind
            loop {
                let out = ec2
                    .client
                    .get_console_output()
                    .instance_id(&instance_id)
                    .latest(true)
                    .send()
                    .await
                    .map_err(|e| Error::user(format!("EC2 GetConsoleOutput failed: {}", aws_sdk_ec2::error::DisplayErrorContext(e))))?;
                let text = out
                    .output()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if let Some(s) = text.lines().rev().find_map(crate::contract::status::parse_status_line) {
                    status = Some(s);
                    break;
                }
                if started.elapsed() >= timeout {
                    return Err(Error::user(format!(
                        "instance {instance_id} is running but its launch did not report within {}s",
                        timeout.as_secs()
                    ))
                    .with_hint("the runner prints `parbake-status {...}` on the console when done; raise --timeout, or read /var/lib/parbake/status.json on the instance"));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
        let seconds_to_ready = status.as_ref().map(|_| (started.elapsed().as_secs_f64() * 10.0).round() / 10.0);
        if let (Some(s), Some(secs)) = (status.as_ref(), seconds_to_ready) {
            let store = crate::store::Store::for_project(&project.root);
            crate::target::launch::record_launch(&crate::target::launch::LaunchRecord {
                store_root: &store.root,
                layer_dir: None,
                target: crate::plan::Target::Aws,
                image: &plan.image,
                stack: &plan.stack,
                layer: &plan.top().name,
                layer_hash: &plan.top().hash,
                accelerator: &format!("ec2 {}", src.region),
                boot_to_ready_s: secs,
                status: s,
                no_roles: false,
            });
        }
        if let Some(s) = status.as_ref().filter(|s| s.state != "done") {
            let failed = s.roles.iter().find(|r| r.status == "failed").map(|r| r.name.clone());
            return Err(Error::user(format!(
                "launch of {} on {instance_id} failed{}: {}",
                plan.stack,
                failed.map(|r| format!(" in role `{r}`")).unwrap_or_default(),
                s.error.clone().unwrap_or_default()
            ))
            .with_hint("the log is /var/log/parbake/launch.log on the instance"));
        }
        Ok(AwsLaunchReport {
            stack: plan.stack.clone(),
            region: src.region.clone(),
            ami: ami_id.clone(),
            instance_id,
            state,
            user_data_bytes: ud.bytes.len(),
            launch_roles: plan.launch.iter().map(|r| r.name.clone()).collect(),
            seconds_to_running,
            seconds_to_ready,
            status,
        })
    })
}
