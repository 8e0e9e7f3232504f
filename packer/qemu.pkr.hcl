# parbake: bake one image layer on the local VM target with Packer's qemu builder.
# parbake fills in every variable with a generated var-file (parbake.pkrvars.json).
# Works with Packer 1.6.6 (Debian) as is; with Packer 1.7+ parbake also writes
# required_plugins.pkr.hcl next to it (see packer/plugins/) and runs `packer init`.
# Checked against the source of qemu plugin 1.1.4, where every argument here exists with the
# same type. Two differences are left alone on purpose:
# - `-cpu` stays a qemuarg: 1.6.6 rejects the `cpu_model` argument that plugin 1.1 has, and a
#   qemuarg replaces the builder's default for the same switch in both.
# - `cpus` becomes `-smp cpus=N,sockets=N` in 1.6.6 and `-smp N` in plugin 1.1: the builder
#   writes that switch itself, and the guest gets N CPUs either way.

variable "layer_name" {
  type = string
}
variable "layer_hash" {
  type = string
}
variable "base_disk" {
  type        = string
  description = "qcow2 the layer starts from: the source disk (layer 1) or layer 1's output (layer 2)"
}
variable "base_checksum" {
  type    = string
  default = "none"
}
variable "kernel" {
  type = string
}
variable "initrd" {
  type = string
}
variable "kernel_append" {
  type = string
}
variable "accelerator" {
  type    = string
  default = "tcg"
}
variable "cpu_model" {
  type    = string
  default = "max"
}
variable "cpus" {
  type    = number
  default = 2
}
variable "memory" {
  type    = number
  default = 1024
}
variable "output_directory" {
  type = string
}
variable "vm_name" {
  type    = string
  default = "disk.qcow2"
}
variable "serial_log" {
  type = string
}
variable "seed_dir" {
  type        = string
  description = "NoCloud seed (user-data, meta-data) that authorises parbake's one-time SSH key"
}
variable "ssh_user" {
  type = string
}
variable "ssh_private_key_file" {
  type = string
}
variable "ssh_timeout" {
  type    = string
  default = "20m"
}
variable "payload_dir" {
  type = string
}

source "qemu" "layer" {
  disk_image       = true
  iso_url          = var.base_disk
  iso_checksum     = var.base_checksum
  use_backing_file = false
  skip_resize_disk = true
  format           = "qcow2"
  headless         = true
  accelerator      = var.accelerator
  cpus             = var.cpus
  memory           = var.memory
  net_device       = "virtio-net"
  disk_interface   = "virtio"
  output_directory = var.output_directory
  vm_name          = var.vm_name
  qemuargs = [
    ["-kernel", var.kernel],
    ["-initrd", var.initrd],
    ["-append", var.kernel_append],
    ["-cpu", var.cpu_model],
    ["-serial", "file:${var.serial_log}"],
  ]
  cd_files             = ["${var.seed_dir}/user-data", "${var.seed_dir}/meta-data"]
  cd_label             = "cidata"
  communicator         = "ssh"
  ssh_username         = var.ssh_user
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = var.ssh_timeout
  boot_wait            = "1s"
  shutdown_command     = "sudo shutdown -P now"
  shutdown_timeout     = "5m"
}

build {
  sources = ["source.qemu.layer"]

  # the file provisioner uploads a directory's contents only into an existing directory
  provisioner "shell" {
    inline = ["mkdir -p /tmp/parbake-payload"]
  }

  provisioner "file" {
    source      = "${var.payload_dir}/"
    destination = "/tmp/parbake-payload"
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo -n sh -c '{{ .Vars }} {{ .Path }}'"
    inline          = ["bash /tmp/parbake-payload/bake.sh"]
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo -n sh -c '{{ .Vars }} {{ .Path }}'"
    inline          = ["sh /tmp/parbake-payload/clean.sh"]
  }
}
