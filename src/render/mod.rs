//! render: a [`Plan`] → every file parbake generates (Packer var-files, bake playbooks, image
//! manifests, user-data). Pure: no I/O and no clock; run-time facts (paths, the SSH key, the
//! resolved AMI) come in through [`RenderOptions`].

pub mod manifest;
pub mod packer;
pub mod playbook;
pub mod userdata;

use crate::config::Project;
use crate::plan::{Layer, Plan};

pub use userdata::{UserData, USERDATA_LIMIT};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    #[error("user-data for stack `{stack}` is {gzipped} bytes even gzipped ({raw} raw); EC2 allows {limit}")]
    UserDataTooLarge {
        stack: String,
        raw: usize,
        gzipped: usize,
        limit: usize,
        parts: Vec<(String, usize)>,
    },
}

impl RenderError {
    pub fn hints(&self) -> Vec<String> {
        match self {
            RenderError::UserDataTooLarge { .. } => vec![
                "move large launch_vars onto the image (bake-time `vars`) or into files the instance fetches (`!secret file:` / SSM)".into(),
                "or promote roles so fewer run at launch (--promote ROLE)".into(),
            ],
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            RenderError::UserDataTooLarge { parts, .. } => {
                let mut s = String::from("  size of each part (raw bytes):\n");
                for (name, size) in parts {
                    s.push_str(&format!("    {size:>7}  {name}\n"));
                }
                Some(s)
            }
        }
    }
}

/// One generated file, relative to the output directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFile {
    pub path: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

impl RenderedFile {
    pub fn text(path: impl Into<String>, contents: impl Into<String>) -> Self {
        RenderedFile {
            path: path.into(),
            contents: contents.into().into_bytes(),
            executable: false,
        }
    }
    pub fn executable(mut self) -> Self {
        self.executable = true;
        self
    }
}

/// Run-time facts the renderers need, shared and per target. `Default` gives readable
/// placeholders, used by `parbake render` and the snapshot tests.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Packer 1.7+: add `required_plugins.pkr.hcl` beside the template.
    pub modern_packer: bool,
    /// A payload refresh of the layer rather than its bake: the build starts from an image
    /// that already ran this layer's roles (same run hash), replaces the payload at
    /// /opt/parbake and the manifest, and runs no role.
    pub refresh: bool,
    pub qemu: QemuOptions,
    pub aws: AwsOptions,
}

/// The local VM target's run-time facts.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// Local image store, where layer disks live (`.parbake/images`).
    pub store_dir: String,
    /// The base disk, kernel and initrd on the host.
    pub base_disk: String,
    pub kernel: String,
    pub initrd: String,
    pub accelerator: String,
    /// Public half of the one-time SSH key Packer logs in with.
    pub ssh_public_key: String,
    pub ssh_private_key_file: String,
    /// The disk a stack layer or a refresh builds on, when the baker chose one: an image with
    /// the right run hash, whichever payload it carries. None: the parent layer's disk.
    pub build_on: Option<String>,
}

impl Default for QemuOptions {
    fn default() -> Self {
        QemuOptions {
            store_dir: ".parbake/images".into(),
            base_disk: "<base-image>/disk.qcow2".into(),
            kernel: "<base-image>/vmlinuz".into(),
            initrd: "<base-image>/initrd.img".into(),
            accelerator: "tcg".into(),
            ssh_public_key: "ssh-ed25519 AAAA<generated-per-bake> parbake".into(),
            ssh_private_key_file: "ssh/id_ed25519".into(),
            build_on: None,
        }
    }
}

/// The AWS target's run-time facts.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// The resolved source AMI of layer 1, and layer 1's AMI for layer 2.
    pub source_ami: String,
    pub parent_ami: String,
    pub ec2_endpoint: String,
    /// Builder-instance tags (owner, run id, expiry) for `parbake gc`.
    pub run_tags: Vec<(String, String)>,
    /// AMI tags known only at run time (creation time).
    pub extra_ami_tags: Vec<(String, String)>,
    /// Appended to the AMI name: EC2 refuses a second AMI with one name, so a forced rebake of
    /// a layer needs its own.
    pub ami_name_suffix: String,
    /// The AMI a stack layer or a refresh builds on, when the baker chose one (the parent's
    /// run layer, or the run layer refreshed). None: `parent_ami` or `source_ami` by kind.
    pub build_on: Option<String>,
    /// A refresh: the layer hash of the run layer it refreshes (`parbake:refresh-of`).
    pub refresh_of: Option<String>,
    /// The root device name of the AMI the build starts from, where `volume:` applies (bake
    /// reads it from the source AMI; `render` shows `/dev/xvda`).
    pub root_device: String,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            source_ami: "ami-00000000000000000".into(),
            parent_ami: "ami-00000000000000000".into(),
            ec2_endpoint: String::new(),
            run_tags: Vec::new(),
            extra_ami_tags: Vec::new(),
            ami_name_suffix: String::new(),
            build_on: None,
            refresh_of: None,
            root_device: "/dev/xvda".into(),
        }
    }
}

/// The directory name of a layer inside a render: `1-debian12`, `2-debian12-web`.
pub fn layer_dir(layer: &Layer) -> String {
    format!("layers/{}-{}", layer.index, layer.name)
}

/// Every file for one layer's bake: Packer template and var-file, and the payload.
pub fn render_layer(
    project: &Project,
    plan: &Plan,
    layer: &Layer,
    opts: &RenderOptions,
) -> Vec<RenderedFile> {
    let mut files = packer::render(project, plan, layer, opts);
    files.extend(playbook::render(plan, layer, opts.refresh));
    files.push(RenderedFile::text(
        "payload/manifest.json",
        manifest::render(plan, layer),
    ));
    files
}

/// Everything for a stack: the plan, each layer, and the user-data.
pub fn render_all(
    project: &Project,
    plan: &Plan,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = vec![RenderedFile::text(
        "plan.json",
        serde_json::to_string_pretty(plan).expect("plan serializes") + "\n",
    )];
    for layer in &plan.layers {
        let dir = layer_dir(layer);
        for f in render_layer(project, plan, layer, opts) {
            files.push(RenderedFile {
                path: format!("{dir}/{}", f.path),
                ..f
            });
        }
    }
    let ud = userdata::render(plan)?;
    // the launch spec decoded, for people: the user-data carries it in base64
    files.push(RenderedFile::text("launch.json", ud.spec_json.clone()));
    if ud.gzipped {
        files.push(RenderedFile::text("user-data.txt", ud.text.clone()));
    }
    files.push(RenderedFile {
        path: "user-data".into(),
        contents: ud.bytes,
        executable: false,
    });
    Ok(files)
}
