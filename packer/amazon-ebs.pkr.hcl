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
# Production settings (issue 28), from the image file's aws source; empty values leave
# Packer's defaults. See docs/aws.md, "Production settings".
variable "ssh_interface" {
  type        = string
  default     = ""
  description = "public_ip, private_ip or session_manager; empty: Packer's choice"
}
variable "builder_instance_profile" {
  type    = string
  default = ""
}
variable "security_group_ids" {
  type    = list(string)
  default = []
}
variable "ssh_source_cidrs" {
  type        = list(string)
  default     = []
  description = "the temporary group's SSH sources; empty: Packer's 0.0.0.0/0"
}
variable "vpc_id" {
  type    = string
  default = ""
}
variable "vpc_filters" {
  type    = map(string)
  default = {}
}
variable "subnet_filters" {
  type    = map(string)
  default = {}
}
variable "encrypt_boot" {
  type    = bool
  default = false
}
variable "kms_key_id" {
  type    = string
  default = ""
}
variable "root_volumes" {
  type = list(object({
    device_name = string
    volume_type = string
    volume_size = number
    iops        = number
    throughput  = number
  }))
  default     = []
  description = "zero or one root volume; null size, iops or throughput leave EC2's"
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
  ssh_interface              = var.ssh_interface
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
  iam_instance_profile       = var.builder_instance_profile
  security_group_ids         = var.security_group_ids
  vpc_id                     = var.vpc_id
  encrypt_boot               = var.encrypt_boot
  kms_key_id                 = var.kms_key_id

  temporary_security_group_source_cidrs = var.ssh_source_cidrs

  vpc_filter {
    filters = var.vpc_filters
  }
  subnet_filter {
    filters   = var.subnet_filters
    most_free = true
  }
  dynamic "launch_block_device_mappings" {
    for_each = var.root_volumes
    content {
      device_name           = launch_block_device_mappings.value.device_name
      volume_type           = launch_block_device_mappings.value.volume_type
      volume_size           = launch_block_device_mappings.value.volume_size
      iops                  = launch_block_device_mappings.value.iops
      throughput            = launch_block_device_mappings.value.throughput
      delete_on_termination = true
    }
  }
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
  iam_instance_profile       = var.builder_instance_profile
  security_group_ids         = var.security_group_ids
  vpc_id                     = var.vpc_id
  encrypt_boot               = var.encrypt_boot
  kms_key_id                 = var.kms_key_id

  temporary_security_group_source_cidrs = var.ssh_source_cidrs

  vpc_filter {
    filters = var.vpc_filters
  }
  subnet_filter {
    filters   = var.subnet_filters
    most_free = true
  }
  dynamic "launch_block_device_mappings" {
    for_each = var.root_volumes
    content {
      device_name           = launch_block_device_mappings.value.device_name
      volume_type           = launch_block_device_mappings.value.volume_type
      volume_size           = launch_block_device_mappings.value.volume_size
      iops                  = launch_block_device_mappings.value.iops
      throughput            = launch_block_device_mappings.value.throughput
      delete_on_termination = true
    }
  }
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
