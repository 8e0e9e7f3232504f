# Packer 1.7+ only. Packer 1.6.6 rejects a `required_plugins` block, so this file is not in
# packer/ itself: parbake copies it next to the template when `packer version` is 1.7 or
# newer, then runs `packer init` (Packer 1.11+ no longer bundles the qemu and amazon plugins).
packer {
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
