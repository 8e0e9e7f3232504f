//! The bake payload of one layer: the playbook that installs every role at /opt/parbake and
//! runs the layer's roles, its vars and ansible.cfg, the driver and clean-up scripts, the
//! dependency shims and the runtime. Packer uploads it to /tmp/parbake-payload.

use serde_json::{Map, Value};

use super::{RenderOptions, RenderedFile};
use crate::config::{Project, VarValue};
use crate::plan::{Layer, LayerKind, Plan};
use crate::runtime;

pub const PAYLOAD: &str = "/tmp/parbake-payload";

/// Vars of a bake: the layer's bake-time vars plus parbake's own.
pub fn bake_vars(plan: &Plan, layer: &Layer) -> Value {
    let mut vars = Map::new();
    for (k, v) in &layer.vars {
        if let VarValue::Plain(v) = v {
            vars.insert(k.clone(), v.clone());
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

pub fn render(
    _project: &Project,
    plan: &Plan,
    layer: &Layer,
    _opts: &RenderOptions,
) -> Vec<RenderedFile> {
    let tag = format!("{}-{}", layer.index, layer.short_hash());
    let mut files = vec![
        RenderedFile::text("payload/bake.yml", bake_playbook(plan, layer)),
        RenderedFile::text(
            "payload/vars.json",
            serde_json::to_string_pretty(&bake_vars(plan, layer)).unwrap() + "\n",
        ),
        RenderedFile::text(
            "payload/ansible.cfg",
            format!(
                "# parbake: Ansible settings for the bake of layer {index} ({name}).\n\
                 # Roles baked by earlier layers resolve to empty shims first, so a meta\n\
                 # dependency on them does not run them again. The role copies are not in\n\
                 # roles/ beside the playbook: Ansible would search there before roles_path.\n\
                 [defaults]\n\
                 roles_path = {PAYLOAD}/shim:{PAYLOAD}/all-roles\n\
                 callback_plugins = {PAYLOAD}/runtime\n\
                 callbacks_enabled = parbake_events\n\
                 retry_files_enabled = False\n\
                 nocolor = True\n\
                 interpreter_python = /usr/bin/python3\n",
                index = layer.index,
                name = layer.name,
            ),
        ),
        RenderedFile::text(
            "payload/bake.sh",
            format!(
                "#!/bin/bash\n\
                 # parbake bake driver, layer {index} ({name}, {hash}); runs on the builder as root.\n\
                 set -euo pipefail\n\
                 export DEBIAN_FRONTEND=noninteractive\n\
                 if ! command -v ansible-playbook >/dev/null 2>&1; then\n\
                 \x20 echo \"parbake: ansible-playbook is missing: installing the distribution's ansible-core\"\n\
                 \x20 apt-get update -qq\n\
                 \x20 apt-get install -y -qq --no-install-recommends ansible-core python3-apt >/dev/null\n\
                 fi\n\
                 mkdir -p /var/lib/parbake /var/log/parbake\n\
                 export ANSIBLE_CONFIG={PAYLOAD}/ansible.cfg\n\
                 export PARBAKE_EVENTS=/var/lib/parbake/bake-{tag}.jsonl PARBAKE_EVENTS_STDOUT=1\n\
                 cd {PAYLOAD}\n\
                 ansible-playbook -i localhost, -c local bake.yml 2>&1 | tee /var/log/parbake/bake-{tag}.log\n",
                index = layer.index,
                name = layer.name,
                hash = layer.short_hash(),
            ),
        )
        .executable(),
        RenderedFile::text("payload/clean.sh", CLEAN_SH.to_string()).executable(),
        RenderedFile::text("payload/runtime/parbake-roles", runtime::RUNNER.to_string()).executable(),
        RenderedFile::text("payload/runtime/parbake_events.py", runtime::CALLBACK.to_string()),
    ];
    // shims: roles baked by parent layers
    let parent_baked: Vec<&String> = layer
        .baked
        .iter()
        .filter(|r| !layer.runs.contains(r))
        .collect();
    for role in parent_baked {
        files.push(RenderedFile::text(
            format!("payload/shim/{role}/tasks/main.yml"),
            SHIM_TASKS,
        ));
        files.push(RenderedFile::text(
            format!("payload/shim/{role}/meta/main.yml"),
            "dependencies: []\n",
        ));
    }
    let _ = tag;
    files
}

const SHIM_TASKS: &str = "# parbake shim: this role is already baked into the parent layer.\n[]\n";

const CLEAN_SH: &str = "#!/bin/sh
# parbake image clean-up: every instance launched from this image must boot as a new machine.
set -eu
cloud-init clean --logs
rm -f /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
# the one-time key Packer logged in with must not stay authorised
rm -f /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys
rm -f /root/.bash_history /home/*/.bash_history
rm -rf /tmp/parbake-payload /run/parbake
# /var/cache/apt/archives and the apt lists stay: launch roles install staged packages from them
sync
";

fn bake_playbook(plan: &Plan, layer: &Layer) -> String {
    let home = runtime::IMAGE_HOME;
    let mut s = format!(
        "# parbake bake playbook: layer {index} `{name}` ({hash}), image `{image}`, target {target}.\n",
        index = layer.index,
        name = layer.name,
        hash = layer.short_hash(),
        image = plan.image,
        target = plan.target,
    );
    if layer.kind == LayerKind::Base {
        s.push_str(&format!(
            "# Installs every role and the parbake runtime at {home}, stages packages for launch roles,\n\
             # runs this layer's roles, then records the image manifest.\n\
             - name: \"parbake: install roles and runtime\"\n\
             \x20 hosts: localhost\n\
             \x20 connection: local\n\
             \x20 gather_facts: false\n\
             \x20 tasks:\n\
             \x20   - name: Create {home}\n\
             \x20     ansible.builtin.file:\n\
             \x20       path: \"{{{{ item }}}}\"\n\
             \x20       state: directory\n\
             \x20       mode: \"0755\"\n\
             \x20     loop: [{home}/roles, {home}/bin, {home}/lib/callback_plugins, {home}/layers]\n\
             \x20   - name: Install every role (run now or later) at {home}/roles\n\
             \x20     ansible.builtin.command: cp -a --no-preserve=ownership {PAYLOAD}/all-roles/. {home}/roles/\n\
             \x20     changed_when: true\n\
             \x20   - name: Install the launch runner\n\
             \x20     ansible.builtin.copy:\n\
             \x20       src: {PAYLOAD}/runtime/parbake-roles\n\
             \x20       dest: {home}/bin/parbake-roles\n\
             \x20       remote_src: true\n\
             \x20       mode: \"0755\"\n\
             \x20   - name: Install the events callback\n\
             \x20     ansible.builtin.copy:\n\
             \x20       src: {PAYLOAD}/runtime/parbake_events.py\n\
             \x20       dest: {home}/lib/callback_plugins/parbake_events.py\n\
             \x20       remote_src: true\n\
             \x20       mode: \"0644\"\n"
        ));
        let packages: Vec<&String> = {
            let mut p: Vec<&String> = layer.stage_apt.values().flatten().collect();
            p.sort();
            p.dedup();
            p
        };
        if !packages.is_empty() {
            s.push_str(&format!(
                "\x20   - name: Refresh the package lists\n\
                 \x20     ansible.builtin.apt:\n\
                 \x20       update_cache: true\n\
                 \x20   - name: Stage packages of launch roles ({roles}) so launch needs no mirror\n\
                 \x20     ansible.builtin.command:\n\
                 \x20       argv: [apt-get, install, --yes, --download-only, --no-install-recommends, {pkgs}]\n\
                 \x20     register: parbake_stage\n\
                 \x20     changed_when: \"'Download complete' in parbake_stage.stdout or 'Fetched' in parbake_stage.stdout\"\n\
                 \x20     environment:\n\
                 \x20       DEBIAN_FRONTEND: noninteractive\n",
                roles = layer.stage_apt.keys().cloned().collect::<Vec<_>>().join(", "),
                pkgs = packages.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
            ));
        }
    } else {
        s.push_str(&format!(
            "# Runs the promoted roles on top of layer {parent}; roles baked there resolve to shims.\n",
            parent = &layer.parent.trim_start_matches("layer:")[..12]
        ));
    }
    s.push_str(&format!(
        "- name: \"parbake: bake layer {index} {name}\"\n\
         \x20 hosts: localhost\n\
         \x20 connection: local\n\
         \x20 gather_facts: true\n\
         \x20 vars_files: [{PAYLOAD}/vars.json]\n\
         \x20 roles:{roles}\n\
         - name: \"parbake: record the image manifest\"\n\
         \x20 hosts: localhost\n\
         \x20 connection: local\n\
         \x20 gather_facts: false\n\
         \x20 tasks:\n\
         \x20   - name: Write {home}/manifest.json and this layer's copy\n\
         \x20     ansible.builtin.copy:\n\
         \x20       src: {PAYLOAD}/manifest.json\n\
         \x20       dest: \"{{{{ item }}}}\"\n\
         \x20       remote_src: true\n\
         \x20       mode: \"0644\"\n\
         \x20     loop: [{home}/manifest.json, {home}/layers/{index}-{hash}.json]\n",
        index = layer.index,
        name = layer.name,
        hash = layer.hash,
        roles = if layer.runs.is_empty() {
            " []".to_string()
        } else {
            layer
                .runs
                .iter()
                .map(|r| format!("\n    - {r}"))
                .collect::<String>()
        },
    ));
    s
}
