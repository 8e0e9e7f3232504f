# Packer 1.7+ only. Packer 1.6.6 rejects a `required_plugins` block, so this file is not in
# packer/ itself: parbake copies it next to the template when `packer version` is 1.7 or
# newer, then runs `packer init` (Packer 1.10.0 stopped bundling the qemu and amazon plugins).
#
# Pinned to the minor versions the templates are known to fit: qemu 1.1.x (from 1.1.4) and
# amazon 1.8.x (from 1.8.2), checked against their source with Packer 1.14.3 and plugin SDK
# 0.6.10 (README: "Packer versions"). `~> 1.1.4` means >= 1.1.4 and < 1.2.0. A newer minor or
# major release may rename or drop an argument; move a pin only after checking the templates
# against it.
packer {
  required_plugins {
    qemu = {
      version = "~> 1.1.4"
      source  = "github.com/hashicorp/qemu"
    }
    amazon = {
      version = "~> 1.8.2"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
