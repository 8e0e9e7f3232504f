//! The typed shape of `images/*.yml` (images) and `images/stacks/*.yml` (stacks), exactly as
//! written by users. Every struct denies unknown fields so typos are errors, not silent defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageFile {
    #[serde(default)]
    pub description: Option<String>,
    pub sources: Sources,
    /// Roles run at bake time in the base layer (their dependencies come along).
    pub basic: Vec<String>,
    /// Roles copied onto the image. Omitted: every role under `roles/`.
    #[serde(default)]
    pub installed: Option<Vec<String>>,
    /// Instance-specific roles that must never be baked (hostname, registration, secrets).
    #[serde(default)]
    pub launch_only: Vec<String>,
    /// Bake-time vars: passed to every role at bake and launch, part of the layer hash.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_yaml::Value>,
    /// Launch-time vars: passed only at launch, written into user-data, not part of any hash.
    #[serde(default)]
    pub launch_vars: BTreeMap<String, serde_yaml::Value>,
    /// The Ansible the image runs: `core: "2.17.7"` installs that ansible-core from PyPI into a
    /// venv on the image for bake and launch. Omitted: the distribution's.
    #[serde(default)]
    pub ansible: Option<AnsibleSettings>,
    /// What the base layer stages for a role, beside the role's own `meta/parbake.yml`: for
    /// roles the team does not own (vendored ones), keyed by role name.
    #[serde(default)]
    pub staging: BTreeMap<String, Staging>,
}

/// `staging: {ROLE: {apt: [...], pip: [...], apt_recommends: false, offline: true}}` in an
/// image or stack file: the same lists and rules as a role's `stage_apt`, `stage_pip`,
/// `stage_apt_recommends` and `offline` in its `meta/parbake.yml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Staging {
    #[serde(default)]
    pub apt: Vec<String>,
    #[serde(default)]
    pub pip: Vec<String>,
    #[serde(default)]
    pub apt_recommends: Option<bool>,
    /// `offline: true`: what plan cannot read in the role (command, shell, raw, script,
    /// expect, a role included by a templated name) needs no network. A claim about the
    /// launch, not the image: it is not hashed.
    #[serde(default, skip_serializing)]
    pub offline: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnsibleSettings {
    /// An exact ansible-core release (`X.Y.Z`).
    pub core: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    #[serde(default)]
    pub qemu: Option<QemuSource>,
    #[serde(default)]
    pub aws: Option<AwsSource>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QemuSource {
    /// `parbake:debian-12` (built by `make base-image`), a local path, or an http(s) URL.
    pub disk_image: String,
    /// `sha256:<hex>` or `none` (only for `parbake:` images and local paths).
    #[serde(default = "none")]
    pub checksum: String,
    pub ssh_user: String,
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    /// Kernel command line for direct kernel boot. The default fits `parbake:debian-12` (an
    /// unpartitioned ext4 disk); a partitioned cloud image wants e.g. `root=/dev/vda1 ...`.
    #[serde(
        default = "default_kernel_append",
        skip_serializing_if = "is_default_kernel_append"
    )]
    pub kernel_append: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AwsSource {
    pub region: String,
    pub source_ami: SourceAmi,
    pub instance_type: String,
    pub ssh_user: String,
    /// AMI name template; `{image}`, `{layer}`, `{hash}` and `{timestamp}` are filled in.
    #[serde(default = "default_ami_name")]
    pub ami_name: String,
    /// Regions the finished AMI is copied to (tags are re-applied there).
    #[serde(default)]
    pub copy_to_regions: Vec<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// At launch, the bootstrap also tags its instance `parbake:status` = `done`/`failed`
    /// (needs `ec2:CreateTags` in the instance profile). Launch-time only: not in the hash.
    #[serde(default, skip_serializing)]
    pub status_tag: bool,
    /// The instance metadata service on instances parbake starts (launch, verify) and in a
    /// launch template it creates: `required` (IMDSv2 only, the default) or `optional`.
    /// Launch-time only: not in the hash.
    #[serde(default, skip_serializing)]
    pub imds: Imds,
    /// The IAM instance profile (by name) of instances parbake starts (launch, verify) and of
    /// a launch template it creates: what `!secret ssm:` and `status_tag` need. Launch-time
    /// only: not in the hash.
    #[serde(default, skip_serializing)]
    pub instance_profile: Option<String>,
    /// How Packer reaches the builder (`public_ip`, `private_ip`, `session_manager`); omitted:
    /// Packer's choice. Builder networking only: not in the hash.
    #[serde(default, skip_serializing)]
    pub ssh_interface: Option<SshInterface>,
    /// The builder's IAM instance profile (by name); `ssh_interface: session_manager` needs
    /// one. Not in the hash.
    #[serde(default, skip_serializing)]
    pub builder_instance_profile: Option<String>,
    /// The builder's security groups, instead of a temporary group Packer makes. Not in the hash.
    #[serde(default, skip_serializing)]
    pub security_group_ids: Vec<String>,
    /// The SSH source CIDRs of Packer's temporary group (Packer's default: 0.0.0.0/0). Not in
    /// the hash.
    #[serde(default, skip_serializing)]
    pub ssh_source_cidrs: Vec<String>,
    /// The builder's VPC, by id or by EC2 filters. Not in the hash.
    #[serde(default, skip_serializing)]
    pub vpc_id: Option<String>,
    #[serde(default, skip_serializing)]
    pub vpc_filter: BTreeMap<String, String>,
    /// The builder's subnet by EC2 filters (the one with the most free addresses), instead of
    /// `subnet_id`. Not in the hash.
    #[serde(default, skip_serializing)]
    pub subnet_filter: BTreeMap<String, String>,
    /// Encrypt the AMI's snapshots, with this KMS key or EBS's default one. Changes the AMI:
    /// in the hash (absent: left out, so existing hashes stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<Encrypt>,
    /// The root volume the AMI is built with (type, size, IOPS, throughput). Changes the AMI:
    /// in the hash (absent: left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Volume>,
    /// The user's tags on every AMI and snapshot of this image, and on the instances and
    /// launch templates parbake makes for its stacks. Not in the hash: re-applied on a cache hit.
    #[serde(default, skip_serializing)]
    pub tags: BTreeMap<String, String>,
    /// How long after its bake an AMI of this image is deprecated (`90d`; EC2's
    /// EnableImageDeprecation). Not in the hash: changing it does not rebake.
    #[serde(default, skip_serializing)]
    pub deprecate_after: Option<String>,
    /// Where each AMI of this image goes after its bake: copies in other regions (each with
    /// its own KMS key), and the accounts and OUs it is shared with. Not in the hash: a cached
    /// AMI is distributed on the next bake.
    #[serde(default, skip_serializing)]
    pub distribute: Option<Distribute>,
    /// One chain of layers per architecture (`x86_64`, `arm64`), each overriding this source's
    /// `instance_type` and `source_ami` where it must. Empty: one architecture, the source
    /// AMI's. Not serialized: each chain hashes its own projected source ([`AwsSource::for_arch`]).
    #[serde(default, skip_serializing)]
    pub architectures: BTreeMap<String, ArchSource>,
    /// Set by [`AwsSource::for_arch`] on a chain of a source whose file bakes several
    /// architectures: its launch templates and SSM parameters are then named by architecture.
    #[serde(skip)]
    pub one_of_several: bool,
}

/// One entry of `architectures:` in an aws source.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchSource {
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub source_ami: Option<ArchSourceAmi>,
}

/// An architecture's own source AMI: the key names its architecture, so `architecture` may be
/// left out (and must agree when written).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchSourceAmi {
    pub owners: Vec<String>,
    pub name: String,
    #[serde(default)]
    pub architecture: Option<String>,
}

impl AwsSource {
    /// The architectures this source bakes, sorted: the keys of `architectures:`, or the
    /// source AMI's one.
    pub fn arches(&self) -> Vec<String> {
        if self.architectures.is_empty() {
            vec![self.source_ami.architecture.clone()]
        } else {
            self.architectures.keys().cloned().collect()
        }
    }

    /// The architecture a projected chain names its launch templates, parameters and jobs
    /// with: only when its file bakes several.
    pub fn arch_suffix(&self) -> Option<&str> {
        (self.one_of_several || self.architectures.len() > 1)
            .then_some(self.source_ami.architecture.as_str())
    }

    /// This source as one architecture's chain sees it: its entry's instance type and source
    /// AMI over the source's own, the source AMI filtered by that architecture, and no
    /// `architectures:` left. None when the source does not bake `arch`.
    pub fn for_arch(&self, arch: &str) -> Option<AwsSource> {
        if self.architectures.is_empty() {
            return (self.source_ami.architecture == arch).then(|| self.clone());
        }
        let entry = self.architectures.get(arch)?;
        let mut out = self.clone();
        out.one_of_several = self.architectures.len() > 1;
        out.architectures = BTreeMap::new();
        if let Some(t) = &entry.instance_type {
            out.instance_type = t.clone();
        }
        if let Some(s) = &entry.source_ami {
            out.source_ami.owners = s.owners.clone();
            out.source_ami.name = s.name.clone();
        }
        out.source_ami.architecture = arch.to_string();
        Some(out)
    }
}

/// `distribute:` in an image's aws source or a stack file (see `config::distribute`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Distribute {
    /// Copies of the AMI in other regions (CopyImage), each re-encrypted with its own key.
    #[serde(default)]
    pub regions: Vec<DistributeRegion>,
    /// 12-digit account ids given launch permission on the AMI and create-volume permission
    /// on its snapshots.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// AWS Organizations OU ARNs given launch permission on the AMI.
    #[serde(default)]
    pub organizational_units: Vec<String>,
    /// Launch permission for everyone (`Group=all`): only when written out.
    #[serde(default)]
    pub public: bool,
}

/// One item of `distribute.regions`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DistributeRegion {
    pub region: String,
    /// A customer-managed KMS key in that region the copy is encrypted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// `imds:` in an aws source.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Imds {
    /// IMDSv2 only: every metadata request needs a session token.
    #[default]
    Required,
    /// IMDSv1 and IMDSv2 (EC2's own default).
    Optional,
}

impl Imds {
    /// EC2's `HttpTokens` value.
    pub fn http_tokens(self) -> &'static str {
        match self {
            Imds::Required => "required",
            Imds::Optional => "optional",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceAmi {
    pub owners: Vec<String>,
    /// Name pattern with `*` wildcards, as EC2's `name` filter takes it.
    pub name: String,
    #[serde(default = "default_arch")]
    pub architecture: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StackFile {
    pub image: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The stack's roles (dependencies and the image's basic roles come along).
    pub roles: Vec<String>,
    /// Default promotions: roles baked into this stack's layer instead of run at launch.
    #[serde(default)]
    pub promote: Vec<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    pub launch_vars: BTreeMap<String, serde_yaml::Value>,
    /// How long a launch may take, from its first start on the instance, across reboots
    /// (`20m`, `1h30m`, `90s`); after it the launch fails naming the running role. Omitted: 60m.
    /// Launch-time only: in the launch spec, not in any layer hash.
    #[serde(default, skip_serializing)]
    pub launch_timeout: Option<serde_yaml::Value>,
    /// Which facts the launch gathers before its roles: `all` (Ansible's default, when
    /// omitted), `min`, `none`, or a list of Ansible `gather_subset` names (`[min, network]`,
    /// `[all, "!hardware"]`). Launch-time only: in the launch spec, not in any layer hash.
    #[serde(default, skip_serializing)]
    pub launch_facts: Option<serde_yaml::Value>,
    /// Health checks run on the instance after the launch roles (`http`, `unit`, `port`,
    /// `command`, `file`; see config::health_checks). Launch-time only: in the launch spec, not in any
    /// layer hash.
    #[serde(default, skip_serializing)]
    pub checks: Vec<CheckDef>,
    /// What the image's base layer stages for a role this stack runs (see [`Staging`]); the
    /// base layer takes the union over every stack of its image.
    #[serde(default)]
    pub staging: BTreeMap<String, Staging>,
    /// Where `parbake publish --target aws` points the fleet: a launch template's new default
    /// version. Not in any layer hash.
    #[serde(default, skip_serializing)]
    pub publish: Option<PublishDef>,
    /// AWS tags on the stack's layer AMIs and snapshots, its instances and the launch template
    /// parbake creates, over the image's `sources.aws.tags`. Not in any layer hash.
    #[serde(default, skip_serializing)]
    pub tags: BTreeMap<String, String>,
    /// The stack's layer AMIs' `deprecate_after`, over the image's. Not in any layer hash.
    #[serde(default, skip_serializing)]
    pub deprecate_after: Option<String>,
    /// The stack's layer AMIs' `distribute`, instead of the image's. Not in any layer hash.
    #[serde(default, skip_serializing)]
    pub distribute: Option<Distribute>,
}

/// `publish:` in a stack file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublishDef {
    /// The EC2 launch template (created at the first publish), in the image's region.
    pub launch_template: String,
    /// An SSM parameter that holds the published AMI id (data type `aws:ec2:image`).
    #[serde(default)]
    pub ssm_parameter: Option<String>,
}

/// `meta/parbake.yml` inside a role: parbake's own metadata, which Ansible ignores.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RoleMetaFile {
    #[serde(default)]
    pub description: Option<String>,
    /// Debian packages downloaded at bake (`apt-get install --download-only`) so the role can
    /// run at launch without reaching a mirror.
    #[serde(default)]
    pub stage_apt: Vec<String>,
    /// Python requirements pinned exactly (`Django==4.2.16`) whose wheels, with their
    /// dependencies', are downloaded at bake for the image's Python and architecture into
    /// /opt/parbake/wheels; at launch pip installs from them with no index.
    #[serde(default)]
    pub stage_pip: Vec<String>,
    /// Whether `stage_apt` downloads the packages' Recommends too. Unset, it follows the role's
    /// apt tasks: with them (apt's default), unless every one says `install_recommends: false`.
    #[serde(default)]
    pub stage_apt_recommends: Option<bool>,
    /// `offline: true`: what plan cannot read in this role's tasks (command, shell, raw,
    /// script, expect, a role included by a templated name) needs no network.
    #[serde(default)]
    pub offline: bool,
}

fn none() -> String {
    "none".into()
}
fn default_memory() -> u32 {
    1024
}
fn default_cpus() -> u32 {
    2
}
/// Kernel command line of the local base disk (direct kernel boot, console on the serial port).
pub const DEFAULT_KERNEL_APPEND: &str =
    "root=/dev/vda rw console=ttyS0 quiet mitigations=off net.ifnames=0";
fn default_kernel_append() -> String {
    DEFAULT_KERNEL_APPEND.into()
}
fn is_default_kernel_append(s: &String) -> bool {
    s == DEFAULT_KERNEL_APPEND
}
fn default_arch() -> String {
    "x86_64".into()
}
fn default_ami_name() -> String {
    "parbake-{image}-{layer}-{hash}".into()
}

/// `ssh_interface:` in an aws source: how Packer reaches the builder.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SshInterface {
    /// The builder's public IP (needs a public subnet).
    PublicIp,
    /// The builder's private IP (Packer runs inside the VPC, or reaches it by VPN).
    PrivateIp,
    /// An SSH session through AWS Systems Manager: no inbound port, no public IP. Needs
    /// `builder_instance_profile` and the session-manager-plugin where Packer runs.
    SessionManager,
}

impl SshInterface {
    /// Packer's `ssh_interface` value.
    pub fn packer(self) -> &'static str {
        match self {
            SshInterface::PublicIp => "public_ip",
            SshInterface::PrivateIp => "private_ip",
            SshInterface::SessionManager => "session_manager",
        }
    }
}

/// `encrypt:` in an aws source: the AMI's snapshots are encrypted (Packer's `encrypt_boot`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Encrypt {
    /// A KMS key id, alias (`alias/…`) or ARN; omitted: the account's default EBS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// `volume:` in an aws source: the builder's root volume, which the AMI keeps.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    #[serde(rename = "type")]
    pub kind: VolumeType,
    /// GiB; omitted: the source AMI's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
    /// Provisioned IOPS (gp3, io1, io2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
    /// MiB/s (gp3 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<u32>,
}

/// The EBS volume types a root volume can be.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Gp3,
    Gp2,
    Io1,
    Io2,
}

impl VolumeType {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Gp3 => "gp3",
            VolumeType::Gp2 => "gp2",
            VolumeType::Io1 => "io1",
            VolumeType::Io2 => "io2",
        }
    }
}

impl Volume {
    /// The IOPS and throughput sent to EC2: gp3 gets its baseline (3000 IOPS, 125 MiB/s) when
    /// omitted, since Packer 1.6.6 refuses a gp3 volume without IOPS.
    pub fn effective(&self) -> (Option<u32>, Option<u32>) {
        match self.kind {
            VolumeType::Gp3 => (
                Some(self.iops.unwrap_or(3_000)),
                Some(self.throughput.unwrap_or(125)),
            ),
            _ => (self.iops, self.throughput),
        }
    }
}

/// One item of `checks:` as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckDef {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub http: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub port: Option<u64>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub status: Option<u64>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub max_age: Option<serde_yaml::Value>,
    #[serde(default)]
    pub timeout: Option<serde_yaml::Value>,
}
