//! The bake payload of one layer: the playbook that installs every role at /opt/parbake and
//! runs the layer's roles, its vars and ansible.cfg, the driver and clean-up scripts, the list
//! of dependency shims and the runtime. Packer uploads it to /tmp/parbake-payload.

use serde_json::{json, Map, Value};

use super::RenderedFile;
use crate::contract as runtime;
use crate::plan::{Layer, LayerKind, Plan};

pub const PAYLOAD: &str = "/tmp/parbake-payload";
/// Where the base bake stages the wheels of launch roles (`stage_pip`).
pub const WHEELS_DIR: &str = "/opt/parbake/wheels";
/// pip's configuration at launch on an image that stages wheels, at /opt/parbake/pip.conf: the
/// runner sets `PIP_CONFIG_FILE` to it for the launch's ansible-playbook only, so every pip a
/// role runs (`ansible.builtin.pip`, a venv's pip) installs from the wheels and asks no index.
pub const PIP_CONF: &str =
    "# parbake: pip at launch installs only the wheels staged at bake (stage_pip), with no index.
# The launch runner sets PIP_CONFIG_FILE to this file for the launch's ansible-playbook only.
[global]
no-index = true
find-links = /opt/parbake/wheels
disable-pip-version-check = true
";

/// Vars of a bake: the layer's bake-time vars plus parbake's own.
pub fn bake_vars(plan: &Plan, layer: &Layer) -> Value {
    let mut vars = Map::new();
    for (k, v) in &layer.vars {
        if let Some(v) = v.ansible_json() {
            vars.insert(k.clone(), v);
        }
    }
    let stack = match layer.kind {
        LayerKind::Base => "",
        LayerKind::Stack => plan.stack.as_str(),
    };
    vars.insert("parbake_stack".into(), stack.into());
    vars.insert("parbake_image".into(), plan.image.clone().into());
    vars.insert("parbake_phase".into(), "bake".into());
    vars.insert("parbake_layer".into(), layer.hash.clone().into());
    Value::Object(vars)
}

/// The payload of a layer's bake, or of its refresh (`refresh`: the payload replaced by
/// `install.sh` and the manifest rewritten, with no Ansible and no role run).
pub fn render(plan: &Plan, layer: &Layer, refresh: bool) -> Vec<RenderedFile> {
    let tag = format!("{}-{}", layer.index, layer.short_hash());
    let mut files = Vec::new();
    if !refresh {
        files.push(RenderedFile::text(
            "payload/bake.yml",
            bake_playbook(plan, layer),
        ));
        files.push(RenderedFile::text(
            "payload/vars.json",
            serde_json::to_string_pretty(&bake_vars(plan, layer)).unwrap() + "\n",
        ));
        files.push(RenderedFile::text(
            "payload/shims.json",
            serde_json::to_string_pretty(&parent_baked(layer)).expect("names serialize") + "\n",
        ));
        files.push(RenderedFile::text(
            "payload/ansible.cfg",
            ansible_cfg(plan, layer),
        ));
    }
    files.extend([
        RenderedFile::text("payload/bake.sh", bake_sh(plan, layer, &tag, refresh)).executable(),
        RenderedFile::text("payload/install.sh", runtime::INSTALL.to_string()).executable(),
        RenderedFile::text("payload/clean.sh", runtime::CLEAN.to_string()).executable(),
        RenderedFile::text("payload/runtime/parbake-roles", runtime::RUNNER.to_string())
            .executable(),
        RenderedFile::text(
            "payload/runtime/parbake_events.py",
            runtime::CALLBACK.to_string(),
        ),
        RenderedFile::text(
            format!("payload/runtime/{}", runtime::LAUNCH_UNIT_NAME),
            runtime::LAUNCH_UNIT.to_string(),
        ),
        RenderedFile::text(
            format!("payload/runtime/{}", runtime::READY_TARGET_NAME),
            runtime::READY_TARGET.to_string(),
        ),
    ]);
    // the runner's package, outside runtime/ (Ansible's callback_plugins there would load
    // every module of a subdirectory as a plugin): runtime/parbake-roles finds it in ../lib/
    files.extend(runtime::RUNNER_PACKAGE.iter().map(|(name, text)| {
        RenderedFile::text(
            format!("payload/lib/{}/{name}", runtime::RUNNER_PACKAGE_NAME),
            text.to_string(),
        )
    }));
    files
}

/// Ansible's settings for the bake: roles (shims first), the callback, and the vendored
/// collections when there are any.
fn ansible_cfg(plan: &Plan, layer: &Layer) -> String {
    let mut cfg = format!(
        "# parbake: Ansible settings for the bake of layer {index} ({name}).\n\
         # Roles baked by earlier layers resolve to shims first (bake.sh builds them\n\
         # from shims.json), so a meta dependency on them does not run them again.\n\
         # The role copies are not in roles/ beside the playbook: Ansible would\n\
         # search there before roles_path.\n\
         [defaults]\n\
         roles_path = {PAYLOAD}/shim:{PAYLOAD}/all-roles\n\
         callback_plugins = {PAYLOAD}/runtime\n\
         callbacks_enabled = parbake_events\n\
         retry_files_enabled = False\n\
         nocolor = True\n\
         interpreter_python = /usr/bin/python3\n",
        index = layer.index,
        name = layer.name,
    );
    if plan.installs_collection_roles() {
        cfg.push_str(&format!(
            "# the roles of collections this image installs resolve through an overlay of\n\
             # their collection first: the installed copy, or the shim of a baked one\n\
             collections_path = {PAYLOAD}/shim/{SHIM_COLLECTIONS}:{}\n",
            runtime::COLLECTIONS_DIR
        ));
    } else if !plan.collections.is_empty() {
        cfg.push_str(&format!(
            "collections_path = {}\n",
            runtime::COLLECTIONS_DIR
        ));
    }
    cfg
}

/// The overlay of the collections whose roles are installed, inside the shim directory
/// (`parbake-roles shim --collections-dir`): not a role name, so never a role on the path.
pub const SHIM_COLLECTIONS: &str = ".collections";

/// The bake driver: Ansible ready (the pinned ansible-core in its venv, or the
/// distribution's), the vendored collections in place (base layer), the shims, the playbook.
/// Formatted only from validated names, hex hashes, an `X.Y.Z` version and parbake's paths.
fn bake_sh(plan: &Plan, layer: &Layer, tag: &str, refresh: bool) -> String {
    let mut sh = format!(
        "#!/bin/bash\n\
         # parbake {what} driver, layer {index} ({name}, {hash}); runs on the builder as root.\n\
         set -euo pipefail\n\
         export DEBIAN_FRONTEND=noninteractive\n",
        what = if refresh { "payload refresh" } else { "bake" },
        index = layer.index,
        name = layer.name,
        hash = layer.short_hash(),
    );
    if !refresh {
        // a refresh runs no Ansible and installs no package: nothing to wait for
        sh.push_str(WAIT_FOR_BOOT);
        sh.push_str(&match &plan.ansible_core {
            Some(core) => pinned_ansible(core),
            None => DISTRIBUTION_ANSIBLE.to_string(),
        });
    }
    sh.push_str("mkdir -p /var/lib/parbake /var/log/parbake\n");
    if !plan.collections.is_empty() {
        // every layer: a stack layer may build on a run layer that carries an older payload
        sh.push_str(&format!(
            "# the vendored collections (parbake vendor), where bake and launch find them\n\
             rm -rf {dir}\n\
             mkdir -p {dir}\n\
             tar -xzf {PAYLOAD}/collections.tar.gz -C {dir} --no-same-owner\n",
            dir = runtime::COLLECTIONS_DIR
        ));
    }
    sh.push_str(&format!("sh {PAYLOAD}/install.sh\n"));
    if refresh {
        let home = runtime::IMAGE_HOME;
        sh.push_str(&format!(
            "# this layer's manifest, as its bake writes it; no role runs\n\
             install -m 0644 {PAYLOAD}/manifest.json {home}/manifest.json\n\
             install -m 0644 {PAYLOAD}/manifest.json {home}/layers/{index}-{hash}.json\n\
             echo \"parbake: payload refreshed, manifest written; no role ran\"\n",
            index = layer.index,
            hash = layer.hash,
        ));
        return sh;
    }
    sh.push_str(&format!(
        "# roles baked by earlier layers: everything but their tasks/main.yml and meta\n\
         # dependencies, which become no-ops (parbake-roles shim)\n\
         python3 {PAYLOAD}/runtime/parbake-roles shim --roles-dir {PAYLOAD}/all-roles \\\n\
         \x20 --out {PAYLOAD}/shim --list {PAYLOAD}/shims.json{overlay}\n\
         export ANSIBLE_CONFIG={PAYLOAD}/ansible.cfg\n\
         export PARBAKE_EVENTS=/var/lib/parbake/bake-{tag}.jsonl PARBAKE_EVENTS_STDOUT=1\n\
         cd {PAYLOAD}\n\
         ansible-playbook -i localhost, -c local bake.yml 2>&1 | tee /var/log/parbake/bake-{tag}.log\n",
        overlay = if plan.installs_collection_roles() {
            format!(" \\\n  --collections-dir {}", runtime::COLLECTIONS_DIR)
        } else {
            String::new()
        },
    ));
    sh
}

/// The builder may still be booting: cloud-init, and apt-daily or unattended-upgrades, can hold
/// the dpkg lock when the bake starts (ansible #51663). Waits, bounded, and says for what.
pub const WAIT_FOR_BOOT: &str = "# wait (bounded) for the source image's own boot work, which may hold the dpkg lock
if command -v cloud-init >/dev/null 2>&1; then
  t0=$(date +%s)
  if ! timeout 300 cloud-init status --wait >/dev/null 2>&1; then
    echo \"parbake: cloud-init did not report done within 300 s (status: $(cloud-init status 2>/dev/null | tr '\\n' ' ')); going on\"
  fi
  echo \"parbake: waited $(( $(date +%s) - t0 )) s for cloud-init to finish\"
fi
t0=$(date +%s)
until python3 -c 'import fcntl, sys
for p in (\"/var/lib/dpkg/lock-frontend\", \"/var/lib/dpkg/lock\"):
    fcntl.lockf(open(p, \"a\"), fcntl.LOCK_EX | fcntl.LOCK_NB)' 2>/dev/null; do
  if [ $(( $(date +%s) - t0 )) -ge 300 ]; then
    echo \"parbake: the dpkg lock is still held after 300 s; going on (apt may fail)\"
    break
  fi
  sleep 2
done
echo \"parbake: waited $(( $(date +%s) - t0 )) s for the dpkg lock\"
";

const DISTRIBUTION_ANSIBLE: &str = "if ! command -v ansible-playbook >/dev/null 2>&1; then
  echo \"parbake: ansible-playbook is missing: installing the distribution's ansible-core\"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ansible-core python3-apt >/dev/null
fi
";

/// The pinned ansible-core in its venv, installed once (the base layer) and used by every
/// layer's bake and by the launch runner. `core` is a checked `X.Y.Z`.
fn pinned_ansible(core: &str) -> String {
    let venv = runtime::ANSIBLE_VENV;
    format!(
        "# ansible-core {core}, pinned by the image (ansible.core), in its own venv\n\
         if ! {venv}/bin/python -c 'import sys, ansible.release as r; sys.exit(r.__version__ != \"{core}\")' 2>/dev/null; then\n\
         \x20 echo \"parbake: installing ansible-core {core} into {venv}\"\n\
         \x20 if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then\n\
         \x20   apt-get update -qq\n\
         \x20   apt-get install -y -qq --no-install-recommends python3-venv python3-apt >/dev/null\n\
         \x20 fi\n\
         \x20 rm -rf {venv}\n\
         \x20 python3 -m venv {venv}\n\
         \x20 {venv}/bin/pip install --quiet --disable-pip-version-check \"ansible-core=={core}\"\n\
         fi\n\
         export PATH={venv}/bin:$PATH\n"
    )
}

/// The roles baked by parent layers, which this layer's bake shims (`parbake-roles shim`).
fn parent_baked(layer: &Layer) -> Vec<&String> {
    layer
        .baked
        .iter()
        .filter(|r| !layer.runs.contains(r))
        .collect()
}

/// The bake playbook, serialized from a value: role and package names are validated at load
/// time, and even so reach the YAML only through the serializer. Only the header comment is
/// formatted, from validated names and hex hashes.
fn bake_playbook(plan: &Plan, layer: &Layer) -> String {
    let home = runtime::IMAGE_HOME;
    let mut header = format!(
        "# parbake bake playbook: layer {index} `{name}` ({hash}), image `{image}`, target {target}.\n",
        index = layer.index,
        name = layer.name,
        hash = layer.short_hash(),
        image = plan.image,
        target = plan.target,
    );
    let mut plays = Vec::new();
    if layer.kind == LayerKind::Base {
        header.push_str(&format!(
            "# bake.sh has installed every role and the parbake runtime at {home} (install.sh). This\n\
             # stages packages for launch roles, runs this layer's roles, then records the manifest.\n"
        ));
        if let Some(stage) = stage_play(layer) {
            plays.push(stage);
        }
    } else {
        header.push_str(&format!(
            "# bake.sh has installed every role and the parbake runtime at {home} (install.sh; the\n\
             # parent may carry an older payload). This runs the promoted roles on top of layer\n\
             # {parent}; roles baked there resolve to shims.\n",
            parent = &layer.parent.trim_start_matches("layer:")[..12]
        ));
    }
    plays.push(json!({
        "name": format!("parbake: bake layer {} {}", layer.index, layer.name),
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": true,
        "vars_files": [format!("{PAYLOAD}/vars.json")],
        "roles": layer.runs,
    }));
    plays.push(json!({
        "name": "parbake: record the image manifest",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": false,
        "tasks": [{
            "name": format!("Write {home}/manifest.json and this layer's copy"),
            "ansible.builtin.copy": {
                "src": format!("{PAYLOAD}/manifest.json"),
                "dest": "{{ item }}",
                "remote_src": true,
                "mode": "0644",
            },
            "loop": [
                format!("{home}/manifest.json"),
                format!("{home}/layers/{}-{}.json", layer.index, layer.hash),
            ],
        }],
    }));
    for play in &mut plays {
        play["vars"] = json!({ "ansible_python_interpreter": PYTHON });
    }
    header + &serde_yaml::to_string(&name_first(Value::Array(plays))).expect("playbook serializes")
}

/// The image's Python, named in every play rather than discovered (discovery warns about
/// `/usr/bin/python3.13` on Debian 13); the bake's vars files still win over play vars.
const PYTHON: &str = "/usr/bin/python3";

/// The same value for YAML, with `name:` first in every mapping (the rest stay sorted), as
/// Ansible playbooks are read.
fn name_first(v: Value) -> serde_yaml::Value {
    match v {
        Value::Array(items) => {
            serde_yaml::Value::Sequence(items.into_iter().map(name_first).collect())
        }
        Value::Object(map) => {
            let mut out = serde_yaml::Mapping::new();
            let (first, rest): (Vec<_>, Vec<_>) = map.into_iter().partition(|(k, _)| k == "name");
            for (k, v) in first.into_iter().chain(rest) {
                out.insert(serde_yaml::Value::String(k), name_first(v));
            }
            serde_yaml::Value::Mapping(out)
        }
        other => serde_yaml::to_value(other).expect("a JSON scalar is a YAML scalar"),
    }
}

/// The base layer's staging play: the packages and wheels of launch roles, downloaded so
/// launch needs no mirror or index; None when no role stages any.
fn stage_play(layer: &Layer) -> Option<Value> {
    let mut tasks = stage_apt_tasks(layer);
    tasks.extend(stage_pip_tasks(layer));
    if tasks.is_empty() {
        return None;
    }
    Some(json!({
        "name": "parbake: stage packages for launch roles",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": false,
        "tasks": tasks,
    }))
}

/// The base bake's tasks that download the apt packages of launch roles (`stage_apt`) into
/// apt's cache, with their Recommends as apt installs them by default, and without for the
/// roles that install without (`Layer::stage_apt_without_recommends`); none when no role
/// stages any.
fn stage_apt_tasks(layer: &Layer) -> Vec<Value> {
    let (bare, full): (Vec<_>, Vec<_>) = layer
        .stage_apt
        .iter()
        .partition(|(role, _)| layer.stage_apt_without_recommends.contains(*role));
    let groups = [(full, true), (bare, false)];
    let mut tasks = Vec::new();
    for (roles, recommends) in groups {
        if let Some(task) = stage_apt_task(&roles, recommends) {
            tasks.push(task);
        }
    }
    if !tasks.is_empty() {
        tasks.insert(
            0,
            json!({
                "name": "Refresh the package lists",
                "ansible.builtin.apt": {"update_cache": true},
            }),
        );
    }
    tasks
}

/// One `apt-get install --download-only` of the packages of `roles`, with or without their
/// Recommends; None when they stage none.
fn stage_apt_task(roles: &[(&String, &Vec<String>)], recommends: bool) -> Option<Value> {
    let mut packages: Vec<&String> = roles.iter().flat_map(|(_, p)| p.iter()).collect();
    packages.sort();
    packages.dedup();
    if packages.is_empty() {
        return None;
    }
    let mut argv: Vec<&str> = vec!["apt-get", "install", "--yes", "--download-only"];
    if !recommends {
        argv.push("--no-install-recommends");
    }
    argv.push("--");
    argv.extend(packages.iter().map(|p| p.as_str()));
    let names: Vec<&str> = roles.iter().map(|(r, _)| r.as_str()).collect();
    Some(json!({
        "name": format!(
            "Stage packages of launch roles ({}){} so launch needs no mirror",
            names.join(", "),
            if recommends { "" } else { " without Recommends" }
        ),
        "ansible.builtin.command": {"argv": argv},
        "register": "parbake_stage",
        "changed_when": "'Download complete' in parbake_stage.stdout or 'Fetched' in parbake_stage.stdout",
        "environment": {"DEBIAN_FRONTEND": "noninteractive"},
    }))
}

/// The base bake's tasks that stage the wheels of launch roles (`stage_pip`) at
/// /opt/parbake/wheels and write /opt/parbake/pip.conf; none when no role stages any. pip
/// runs on the builder, from a throwaway venv of the image's own python3 (gone with the
/// payload), so the wheels match the image's Python and architecture and no pip stays on the
/// image. The venv needs python3-venv, installed when missing, as the pinned ansible-core's
/// venv does. One `pip download` per role, so two roles may pin different versions.
fn stage_pip_tasks(layer: &Layer) -> Vec<Value> {
    if layer.stage_pip.is_empty() {
        return Vec::new();
    }
    let pip_venv = format!("{PAYLOAD}/pip-venv");
    let mut tasks = vec![
        json!({
            "name": "Look for venv and ensurepip (a pip to stage wheels with)",
            "ansible.builtin.command": {"argv": ["python3", "-c", "import ensurepip, venv"]},
            "register": "parbake_ensurepip",
            "changed_when": false,
            "failed_when": false,
        }),
        json!({
            "name": "Install python3-venv for the staging pip",
            "ansible.builtin.apt": {"name": "python3-venv", "state": "present", "install_recommends": false, "update_cache": true},
            "when": "parbake_ensurepip.rc != 0",
            "environment": {"DEBIAN_FRONTEND": "noninteractive"},
        }),
        json!({
            "name": "A throwaway pip on the image's python3, for staging wheels",
            "ansible.builtin.command": {"argv": ["python3", "-m", "venv", pip_venv], "creates": format!("{pip_venv}/bin/pip")},
        }),
        json!({
            "name": format!("Create {WHEELS_DIR}"),
            "ansible.builtin.file": {"path": WHEELS_DIR, "state": "directory", "mode": "0755"},
        }),
    ];
    let pip = format!("{pip_venv}/bin/pip");
    for (role, requirements) in &layer.stage_pip {
        let mut argv: Vec<&str> = vec![
            &pip,
            "download",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--dest",
            WHEELS_DIR,
            "--",
        ];
        argv.extend(requirements.iter().map(String::as_str));
        tasks.push(json!({
            "name": format!("Stage the wheels of launch role {role} so launch needs no index"),
            "ansible.builtin.command": {"argv": argv},
            "register": "parbake_stage_pip",
            "changed_when": "'Saved ' in parbake_stage_pip.stdout",
        }));
    }
    tasks.push(json!({
        "name": "Point pip at the staged wheels at launch (the runner sets PIP_CONFIG_FILE)",
        "ansible.builtin.copy": {"content": PIP_CONF, "dest": format!("{}/pip.conf", runtime::IMAGE_HOME), "mode": "0644"},
    }));
    tasks
}
