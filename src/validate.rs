//! `parbake validate`: renders every stack (as configured, with nothing promoted, and with
//! everything promoted) for every target it has a source for, and runs the real validators:
//! `packer validate`, `ansible-playbook --syntax-check` and `cloud-init schema`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Project;
use crate::error::{Error, Result};
use crate::interrupt::{checkpoint, point};
use crate::plan::{self, Plan, PlanRequest, Target};
use crate::process::Cmd;
use crate::render::{self, RenderOptions};
use crate::tools::Tools;
use crate::write::write_tree;

#[derive(Debug, Serialize)]
pub struct Check {
    pub validator: String,
    pub subject: String,
    pub ok: bool,
    pub output: String,
    /// A failed `packer validate` of the project's own template (its path under the project),
    /// which overrides parbake's embedded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_template: Option<String>,
}

impl Check {
    /// The first failed check of a template the project overrides.
    pub fn refused_project_template(checks: &[Check]) -> Option<&str> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .find_map(|c| c.project_template.as_deref())
    }
}

/// The project's own file for the target's Packer template, when it overrides the embedded one.
fn project_template(project: &Project, target: Target) -> Option<String> {
    let rel = crate::targets::backend(target).template();
    let origin = project.templates.origin(rel);
    (origin != "embedded").then(|| origin.to_string())
}

/// The promotion variants each stack is validated with.
fn variants(project: &Project, stack: &str) -> Vec<(String, Vec<String>)> {
    let s = &project.stacks[stack];
    let image = &project.images[&s.def.image];
    let all: Vec<String> = s
        .def
        .roles
        .iter()
        .filter(|r| !image.def.launch_only.contains(r))
        .filter(|r| {
            // a role whose dependencies reach a launch-only role cannot be promoted
            plan::dependency_order(project, std::slice::from_ref(r))
                .map(|deps| !deps.iter().any(|d| image.def.launch_only.contains(d)))
                .unwrap_or(false)
        })
        .cloned()
        .collect();
    let mut v = vec![("as configured".to_string(), Vec::new())];
    if !all.is_empty() {
        v.push(("everything promoted".to_string(), all));
    }
    v
}

pub fn run(
    project: &Project,
    tools: &Tools,
    stacks: &[String],
    targets: &[Target],
    mut progress: impl FnMut(&Check),
) -> Result<Vec<Check>> {
    let tmp = crate::write::private_temp("parbake-validate-")
        .tempdir()
        .map_err(|e| Error::io("create a temp dir", std::env::temp_dir(), e))?;
    let packer = tools.packer_version()?;
    let opts = RenderOptions {
        modern_packer: packer.needs_init(),
        ..RenderOptions::default()
    };
    // Packer 1.7+: `packer init` once, in the first layer rendered; every layer requires the
    // same plugins (packer/plugins/required_plugins.pkr.hcl)
    let mut plugins_ready = !packer.needs_init();
    let stacks: Vec<String> = if stacks.is_empty() {
        project.stacks.keys().cloned().collect()
    } else {
        for s in stacks {
            project.stack(s)?;
        }
        stacks.to_vec()
    };
    let mut checks = Vec::new();
    let mut n = 0;
    let host = crate::ansible_core::host_version(tools);
    let mut cores: std::collections::BTreeMap<String, crate::ansible_core::Chosen> =
        Default::default();
    for stack in &stacks {
        for &target in targets {
            let image = &project.images[&project.stacks[stack].def.image];
            let has_source = match target {
                Target::Qemu => image.def.sources.qemu.is_some(),
                Target::Aws => image.def.sources.aws.is_some(),
            };
            if !has_source {
                continue;
            }
            for (arch, view) in arch_views(project, image, target)? {
                let project = view.as_ref();
                for (variant, promote) in variants(project, stack) {
                    checkpoint(point::CHECK)?;
                    let plan = plan::plan(
                        project,
                        &PlanRequest {
                            stack: stack.clone(),
                            promote: promote.clone(),
                            target,
                            source_identity: None,
                        },
                    )?;
                    let files = render::render_all(project, &plan, &opts)?;
                    n += 1;
                    let dir = tmp.path().join(format!("{n}-{stack}-{target}"));
                    write_tree(&dir, &files)?;
                    if !plugins_ready {
                        let first = plan
                            .layers
                            .first()
                            .map_or(dir.clone(), |l| dir.join(render::layer_dir(l)));
                        let c = init_plugins(project, tools, packer, &first)?;
                        progress(&c);
                        checks.push(c);
                        plugins_ready = true;
                    }
                    let subject = match &arch {
                        Some(a) => format!("{stack} ({target} {a}, {variant})"),
                        None => format!("{stack} ({target}, {variant})"),
                    };
                    let (core, whose) =
                        crate::config::ansible_version::image_core(&image.def, &target.to_string());
                    if !cores.contains_key(&core) {
                        let chosen =
                            crate::ansible_core::choose(tools, host.as_deref(), &core, &whose)?;
                        cores.insert(core.clone(), chosen);
                    }
                    let ansible = &cores[&core];
                    for c in check_render(project, tools, ansible, &plan, &dir, &subject)? {
                        progress(&c);
                        checks.push(c);
                    }
                }
            }
        }
    }
    Ok(checks)
}

/// The project as each chain the target bakes of `image` sees it (`Backend::arch_chains`):
/// one view per architecture an aws source lists, else the project as loaded.
fn arch_views<'a>(
    project: &'a Project,
    image: &crate::config::Image,
    target: Target,
) -> Result<Vec<(Option<String>, std::borrow::Cow<'a, Project>)>> {
    let chains = crate::targets::backend(target).arch_chains(image, None)?;
    Ok(chains
        .into_iter()
        .map(|arch| match arch {
            Some(a) => {
                let view = project.for_arch(&a);
                (Some(a), std::borrow::Cow::Owned(view))
            }
            None => (None, std::borrow::Cow::Borrowed(project)),
        })
        .collect())
}

/// `packer init` in a rendered layer directory, as a check that passed; a failure stops the run
/// with the error that says how to install the plugins without GitHub.
fn init_plugins(
    project: &Project,
    tools: &Tools,
    packer: crate::packer_version::Version,
    dir: &Path,
) -> Result<Check> {
    checkpoint(point::CHECK)?;
    let output = tools.packer_init(dir, packer, |_| {}).map_err(|e| {
        match project.templates.origin(crate::config::PLUGINS_TEMPLATE) {
            "embedded" => e,
            own => e.with_hint(format!(
                "the plugins come from {own}, this project's own file, which overrides \
                 parbake's embedded one: fix it, or remove it to use the embedded pins"
            )),
        }
    })?;
    Ok(Check {
        validator: "packer init".into(),
        subject: format!("Packer {packer} plugins"),
        ok: true,
        output,
        project_template: None,
    })
}

/// Runs one validator; stops first if parbake was interrupted (a running validator gets the
/// signal forwarded, and its interruption ends the whole run).
fn outcome(validator: &str, subject: String, cmd: Cmd) -> Result<Check> {
    checkpoint(point::CHECK)?;
    let out = cmd.run_streaming(|_| {})?;
    Ok(Check {
        validator: validator.to_string(),
        subject,
        ok: out.success(),
        output: out.text(),
        project_template: None,
    })
}

fn check_render(
    project: &Project,
    tools: &Tools,
    ansible: &crate::ansible_core::Chosen,
    plan: &Plan,
    dir: &Path,
    subject: &str,
) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for layer in &plan.layers {
        let ldir = dir.join(render::layer_dir(layer));
        crate::targets::backend(plan.target).prepare_validate(&ldir)?;
        let mut packer = outcome(
            "packer validate",
            format!("{subject} layer {} {}", layer.index, layer.name),
            Cmd::new("validate a Packer template", &tools.packer)
                .args([
                    "validate",
                    &format!("-var-file={}", render::packer::VAR_FILE),
                    ".",
                ])
                .cwd(&ldir),
        )?;
        if !packer.ok {
            packer.project_template = project_template(project, plan.target);
        }
        checks.push(packer);
        let payload = ldir.join("payload");
        build_shims(
            tools,
            project,
            &payload.join("runtime/parbake-roles"),
            &payload.join("shims.json"),
        )?;
        checks.push(outcome(
            "ansible-playbook --syntax-check",
            format!(
                "{subject} layer {} bake.yml, {}",
                layer.index, ansible.label
            ),
            ansible_syntax(
                &ansible.playbook,
                project,
                &ldir.join("payload"),
                &ldir.join("payload/bake.yml"),
            )?,
        )?);
    }
    // what the runner will run at launch: the launch roles, baked roles shimmed
    let launch_dir = dir.join("launch-check");
    std::fs::create_dir_all(&launch_dir).map_err(|e| Error::io("create", &launch_dir, e))?;
    let list = launch_dir.join("shims.json");
    let runner = crate::contract::write_runner(&launch_dir)
        .map_err(|e| Error::io("write", &launch_dir, e))?;
    std::fs::write(&list, serde_json::to_string(plan.baked()).unwrap())
        .map_err(|e| Error::io("write", &list, e))?;
    build_shims(tools, project, &runner, &list)?;
    let roles: Vec<&str> = plan.launch.iter().map(|r| r.name.as_str()).collect();
    let playbook = launch_dir.join("launch.yml");
    std::fs::write(
        &playbook,
        serde_json::to_string_pretty(&serde_json::json!([{
            "name": "parbake launch check", "hosts": "localhost", "connection": "local", "roles": roles
        }]))
        .unwrap(),
    )
    .map_err(|e| Error::io("write", &playbook, e))?;
    checks.push(outcome(
        "ansible-playbook --syntax-check",
        format!("{subject} launch roles, {}", ansible.label),
        ansible_syntax(&ansible.playbook, project, &launch_dir, &playbook)?,
    )?);
    // cloud-init reads the decompressed text
    let ud = if dir.join("user-data.txt").exists() {
        dir.join("user-data.txt")
    } else {
        dir.join("user-data")
    };
    checks.push(outcome(
        "cloud-init schema",
        format!("{subject} user-data"),
        Cmd::new("validate user-data", &tools.cloud_init)
            .args(["schema", "--config-file"])
            .arg(&ud),
    )?);
    Ok(checks)
}

/// The shims of the roles `list` names (a JSON array, beside it) in `shim/` beside it, built
/// by the runner at `runner` from the project's roles, as the bake and the launch build them.
fn build_shims(tools: &Tools, project: &Project, runner: &Path, list: &Path) -> Result<()> {
    let dir = list.parent().unwrap_or(Path::new("."));
    checkpoint(point::CHECK)?;
    let mut cmd = Cmd::new("build the shims of baked roles", &tools.python3)
        .arg(runner)
        .args(["shim", "--roles-dir"])
        .arg(roles_dir(project, dir)?)
        .arg("--out")
        .arg(dir.join("shim"))
        .arg("--list")
        .arg(list);
    let collections = crate::vendoring::collections_dir(&project.root);
    if collections.is_dir() {
        // the roles of collections resolve through their overlay, as on the image
        cmd = cmd.arg("--collections-dir").arg(collections);
    }
    cmd.run_checked()?;
    Ok(())
}

/// Every role of the project (its own and the vendored ones) under one directory in `base`,
/// as the payload's `all-roles` holds them: one link per role.
fn roles_dir(project: &Project, base: &Path) -> Result<PathBuf> {
    let dir = base.join("all-roles");
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    for (name, role) in &project.roles {
        let link = dir.join(name);
        std::os::unix::fs::symlink(&role.dir, &link)
            .map_err(|e| Error::io("link a role", &link, e))?;
    }
    Ok(dir)
}

fn ansible_syntax(
    ansible_playbook: &Path,
    project: &Project,
    base: &Path,
    playbook: &Path,
) -> Result<Cmd> {
    let roles: PathBuf = roles_dir(project, base)?;
    // an empty config: the payload's ansible.cfg points at paths on the builder, not here
    let _ = std::fs::write(base.join("ansible-validate.cfg"), "[defaults]\n");
    Ok(Cmd::new("check playbook syntax", ansible_playbook)
        .args(["--syntax-check", "-i", "localhost,"])
        .arg(playbook)
        .env(
            "ANSIBLE_ROLES_PATH",
            format!("{}:{}", base.join("shim").display(), roles.display()),
        )
        .env("ANSIBLE_CONFIG", base.join("ansible-validate.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        // both inside this run's private temp dir (0700): a fixed, shared path under TMPDIR
        // would let another local user plant plugins that the syntax check imports
        .env("ANSIBLE_LOCAL_TEMP", base.join("ansible-tmp"))
        .env("ANSIBLE_HOME", base.join("ansible-home"))
        .env(
            "ANSIBLE_COLLECTIONS_PATH",
            format!(
                "{}:{}",
                base.join("shim")
                    .join(crate::render::playbook::SHIM_COLLECTIONS)
                    .display(),
                crate::vendoring::collections_dir(&project.root).display()
            ),
        )
        .cwd(base))
}
