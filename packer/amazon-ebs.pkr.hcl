# parbake: bake one image layer as an AMI with Packer's amazon-ebs builder.
# parbake fills in every variable with a generated var-file (parbake.pkrvars.json).
# Works with Packer 1.6.6 (Debian) as is; with Packer 1.7+ parbake also writes
# required_plugins.pkr.hcl next to it (see packer/plugins/) and runs `packer init`.
# Checked against the source of amazon plugin 1.8.2: every argument here exists there with
# the same type.

variable "layer_name" {
  type = string
}
variable "layer_hash" {
  type = string
}
variable "region" {
  type = string
}
variable "source_ami" {
  type        = string
  description = "resolved by parbake: the newest matching AMI (layer 1) or layer 1's AMI (layer 2)"
}
variable "instance_type" {
  type = string
}
variable "ssh_user" {
  type = string
}
variable "ami_name" {
  type = string
}
variable "ami_regions" {
  type    = list(string)
  default = []
}
variable "ami_tags" {
  type = map(string)
}
variable "run_tags" {
  type        = map(string)
  description = "builder instance tags: owner, run id and expiry, so `parbake gc` finds leftovers"
}
variable "subnet_id" {
  type    = string
  default = ""
}
variable "endpoint_ec2" {
  type        = string
  default     = ""
  description = "custom EC2 endpoint (tests point it at a local moto server)"
}
variable "skip_region_validation" {
  type    = bool
  default = false
}
# True exactly when endpoint_ec2 is set. Amazon plugin 1.8+ first checks the credentials with
# STS GetCallerIdentity, always at AWS's own STS endpoint, which an EC2 stand-in (moto,
# LocalStack, a private endpoint) cannot answer. Against real AWS the check stays on.
variable "skip_credential_validation" {
  type    = bool
  default = false
}
variable "payload_dir" {
  type = string
}
variable "manifest_output" {
  type = string
}
variable "test_pause_seconds" {
  type        = number
  default     = 0
  description = "test-only: how long the no-provision build waits with its instance running"
}

source "amazon-ebs" "layer" {
  region                     = var.region
  source_ami                 = var.source_ami
  instance_type              = var.instance_type
  ssh_username               = var.ssh_user
  ami_name                   = var.ami_name
  ami_regions                = var.ami_regions
  tags                       = var.ami_tags
  snapshot_tags              = var.ami_tags
  run_tags                   = var.run_tags
  run_volume_tags            = var.run_tags
  subnet_id                  = var.subnet_id
  custom_endpoint_ec2        = var.endpoint_ec2
  skip_region_validation     = var.skip_region_validation
  skip_credential_validation = var.skip_credential_validation
}

# Test-only: the same AMI build with no communicator and so no provisioning, selected with
# `packer build -only=amazon-ebs.no-provision` when PARBAKE_TEST_SKIP_PROVISIONING=1.
source "amazon-ebs" "no-provision" {
  region                     = var.region
  source_ami                 = var.source_ami
  instance_type              = var.instance_type
  communicator               = "none"
  ami_name                   = var.ami_name
  ami_regions                = var.ami_regions
  tags                       = var.ami_tags
  snapshot_tags              = var.ami_tags
  run_tags                   = var.run_tags
  run_volume_tags            = var.run_tags
  subnet_id                  = var.subnet_id
  custom_endpoint_ec2        = var.endpoint_ec2
  skip_region_validation     = var.skip_region_validation
  skip_credential_validation = var.skip_credential_validation
}

build {
  sources = ["source.amazon-ebs.layer", "source.amazon-ebs.no-provision"]

  # the file provisioner uploads a directory's contents only into an existing directory
  provisioner "shell" {
    only   = ["amazon-ebs.layer"]
    inline = ["mkdir -p /tmp/parbake-payload"]
  }

  provisioner "file" {
    only        = ["amazon-ebs.layer"]
    source      = "${var.payload_dir}/"
    destination = "/tmp/parbake-payload"
  }

  provisioner "shell" {
    only            = ["amazon-ebs.layer"]
    execute_command = "chmod +x {{ .Path }}; sudo -n sh -c '{{ .Vars }} {{ .Path }}'"
    inline          = ["bash /tmp/parbake-payload/bake.sh"]
  }

  provisioner "shell" {
    only            = ["amazon-ebs.layer"]
    execute_command = "chmod +x {{ .Path }}; sudo -n sh -c '{{ .Vars }} {{ .Path }}'"
    inline          = ["sh /tmp/parbake-payload/clean.sh"]
  }

  # Test-only: keeps the no-provision build's instance running for a while, so a test can
  # interrupt a bake mid-way (PARBAKE_TEST_PAUSE_SECONDS).
  provisioner "shell-local" {
    only   = ["amazon-ebs.no-provision"]
    inline = ["sleep ${var.test_pause_seconds}"]
  }

  post-processor "manifest" {
    output     = var.manifest_output
    strip_path = true
  }
}
