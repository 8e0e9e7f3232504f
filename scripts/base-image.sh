#!/usr/bin/env bash
# Builds a bootable Debian 12 (bookworm) or Debian 13 (trixie) qcow2 from Debian's packages, the
# local stand-in for a cloud base image (`parbake:debian-12`, `parbake:debian-13`), and caches it
# under ${PARBAKE_CACHE:-/var/cache/parbake}/base/<recipe-hash>/:
#   disk.qcow2   ext4 root filesystem on the whole disk (/dev/vda, no partition table)
#   vmlinuz      kernel for direct kernel boot (-kernel)
#   initrd.img   initramfs with virtio_pci virtio_blk virtio_net ext4 (-initrd)
#   recipe.json  packages, suites, hash, kernel, build time
# Boot with: -kernel vmlinuz -initrd initrd.img -append "root=/dev/vda rw console=ttyS0 net.ifnames=0"
# (the NIC is named eth0 even without net.ifnames=0: 99-default.link is masked in the image).
#
# usage: scripts/base-image.sh [--base debian-12|debian-13] [--print-path]
#   (no args)     build unless cached; print the image directory on stdout (logs go to stderr)
#   --base NAME   which Debian (default debian-12)
#   --print-path  print the directory that would be used; exit 1 if it is not built yet
# The recipe hash is the sha256 of the recipe section below (between the two marker lines), so
# any edit of the package list, suites or hooks yields a new directory and a rebuild. Debian 13's
# recipe is that section plus the debian-13 section after it (its overrides), so its hash changes
# with either and Debian 12's hash never depends on Debian 13's section.
# Needs root (mmdebstrap --mode=root, mkfs.ext4 -d keeps ownership), mmdebstrap, e2fsprogs,
# qemu-utils, python3. Env: PARBAKE_CACHE, PARBAKE_DEBIAN_MIRROR, PARBAKE_DEBIAN_SECURITY_MIRROR
# (mirrors are not part of the hash).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
say() { printf 'base-image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

BASE=debian-12
print_only=false
hook=()
while [ $# -gt 0 ]; do
  case "$1" in
    --base) [ $# -ge 2 ] || die "--base needs a value (debian-12 or debian-13)"; BASE=$2; shift 2 ;;
    --print-path) print_only=true; shift ;;
    --hook) [ $# -ge 3 ] || die "--hook needs a name and a root"; hook=("$2" "$3"); shift 3 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (usage: base-image.sh [--base debian-12|debian-13] [--print-path])" ;;
  esac
done
case "$BASE" in
  debian-12|debian-13) ;;
  *) die "unknown base: $BASE (known: debian-12, debian-13)" ;;
esac

# ---- parbake recipe begin ----
SUITE=bookworm
SUITES="bookworm bookworm-updates bookworm-security"
VARIANT=apt
COMPONENTS=main
DISK_SIZE=3G
PACKAGES=(
  linux-image-cloud-amd64 systemd-sysv udev dbus openssh-server cloud-init python3 python3-apt sudo
  ifupdown isc-dhcp-client netbase iproute2 ca-certificates ansible-core procps
)
# dbus: hostnamectl/timedatectl (Ansible's hostname and timezone modules) and non-root systemctl
# need it; without it `shutdown` prints "Failed to connect to bus". ca-certificates: https in apt
# and get_url. procps: sysctl, ps and friends, as on Debian's cloud images (ansible.posix.sysctl
# needs sysctl). Recommends are not installed, so udev and dbus must be listed.
INITRAMFS_MODULES="virtio_pci virtio_blk virtio_net ext4"

# Runs after the essential packages, before the kernel is installed: the kernel's postinst then
# builds a small initramfs (MODULES=list) that has the virtio drivers (modules in the cloud kernel).
hook_essential() {
  local root=$1
  mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
  printf 'MODULES=list\n' > "$root/etc/initramfs-tools/conf.d/parbake"
  printf '%s\n' $INITRAMFS_MODULES > "$root/usr/share/initramfs-tools/modules.d/parbake"
}

hook_customize() {
  local root=$1
  printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' > "$root/etc/fstab"
  # every launch is a first boot: systemd makes a new machine-id, cloud-init new host keys
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
  printf 'debian\n' > "$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
  rm -f "$root/etc/resolv.conf"   # mmdebstrap copied the host's; dhclient writes the guest's
  # The NIC is always eth0: mask udev's predictable naming (also pass net.ifnames=0).
  mkdir -p "$root/etc/systemd/network"
  ln -sf /dev/null "$root/etc/systemd/network/99-default.link"
  cat > "$root/etc/network/interfaces" <<'EOF'
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
EOF
  mkdir -p "$root/etc/cloud/cloud.cfg.d"
  cat > "$root/etc/cloud/cloud.cfg.d/90-parbake.cfg" <<'EOF'
# parbake local base image: NoCloud seed (cidata) or nothing; no disk resize; ifupdown owns eth0
datasource_list: [NoCloud, None]
resize_rootfs: false
growpart: {mode: 'off'}
locale: false
manage_etc_hosts: true
network: {config: disabled}
EOF
  # Trust the certificate authorities the build host adds locally (a TLS-intercepting proxy,
  # a company CA): guests reach PyPI and mirrors through the host's network.
  if compgen -G "$LOCAL_CA_DIR/*.crt" >/dev/null; then
    cp "$LOCAL_CA_DIR"/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1
  fi
  # sudo -n for the default user comes from cloud-init; no apt caches in the image
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
}
# ---- parbake recipe end ----
# ---- parbake recipe debian-13 begin ----
# Debian 13 (trixie): the recipe above (hooks included) with these overrides. isc-dhcp-client is
# deprecated upstream but still in trixie, and ifupdown's dhcp method still drives it.
if [ "$BASE" = debian-13 ]; then
  SUITE=trixie
  SUITES="trixie trixie-updates trixie-security"
fi
# ---- parbake recipe debian-13 end ----

LOCAL_CA_DIR=${PARBAKE_LOCAL_CA_DIR:-/usr/local/share/ca-certificates}
# The recipe: the section above plus the local CAs copied into the image.
recipe_text() {
  sed -n '/^# ---- parbake recipe begin ----$/,/^# ---- parbake recipe end ----$/p' "$SELF"
  if [ "$BASE" != debian-12 ]; then
    sed -n "/^# ---- parbake recipe $BASE begin ----\$/,/^# ---- parbake recipe $BASE end ----\$/p" "$SELF"
  fi
  if compgen -G "$LOCAL_CA_DIR/*.crt" >/dev/null; then cat "$LOCAL_CA_DIR"/*.crt; fi
}

# internal: mmdebstrap runs the hooks through this script
if [ ${#hook[@]} -gt 0 ]; then
  "hook_${hook[0]}" "${hook[1]}"
  exit 0
fi

CACHE=${PARBAKE_CACHE:-/var/cache/parbake}
HASH=$(recipe_text | sha256sum | cut -d' ' -f1)
DIR=$CACHE/base/$HASH

if $print_only; then
  echo "$DIR"
  [ -f "$DIR/disk.qcow2" ] || exit 1
  exit 0
fi
if [ -f "$DIR/disk.qcow2" ]; then
  say "cached: $DIR"
  echo "$DIR"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap --mode=root and mkfs.ext4 -d need it)"
for t in mmdebstrap mkfs.ext4 qemu-img python3 flock; do
  command -v "$t" >/dev/null || die "missing $t (run scripts/setup.sh)"
done

mkdir -p "$CACHE/base"
exec 9>"$CACHE/base/.lock"
flock 9   # one build at a time; a concurrent run waits, then finds the cache
if [ -f "$DIR/disk.qcow2" ]; then say "cached: $DIR"; echo "$DIR"; exit 0; fi

MIRROR=${PARBAKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SEC_MIRROR=${PARBAKE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
TMP=$(mktemp -d "$CACHE/base/.tmp-$HASH.XXXXXX")
cleanup() {
  # mmdebstrap unmounts on its own errors; if it was killed, lazily unmount what it left in the
  # rootfs (deepest first) and never let rm cross into a mount such as a bind of the host's /dev
  awk -v t="$TMP/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'say "failed (line $LINENO)"' ERR

start=$(date +%s)
say "building $BASE in $DIR (about 1-3 min)"
sources=()
for s in $SUITES; do
  case "$s" in
    *-security) sources+=("deb $SEC_MIRROR $s $COMPONENTS") ;;
    *) sources+=("deb $MIRROR $s $COMPONENTS") ;;
  esac
done
mmdebstrap --variant="$VARIANT" --mode=root --quiet \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --essential-hook="\"$SELF\" --base $BASE --hook essential \"\$1\"" \
  --customize-hook="\"$SELF\" --base $BASE --hook customize \"\$1\"" \
  "$SUITE" "$TMP/rootfs" "${sources[@]}" >&2
t_debootstrap=$(( $(date +%s) - start ))

kernel=$(ls "$TMP"/rootfs/boot/vmlinuz-* | sort -V | tail -1)
kver=${kernel##*/vmlinuz-}
[ -f "$TMP/rootfs/boot/initrd.img-$kver" ] || die "no initrd for $kver"
cp "$kernel" "$TMP/vmlinuz"
cp "$TMP/rootfs/boot/initrd.img-$kver" "$TMP/initrd.img"

truncate -s "$DISK_SIZE" "$TMP/disk.raw"
mkfs.ext4 -q -F -L parbake-root -d "$TMP/rootfs" "$TMP/disk.raw"
rm -rf --one-file-system "$TMP/rootfs"
qemu-img convert -O qcow2 "$TMP/disk.raw" "$TMP/disk.qcow2"
rm -f "$TMP/disk.raw"
secs=$(( $(date +%s) - start ))

python3 - "$TMP/recipe.json" "$BASE" "$HASH" "$SUITES" "$kver" "$secs" "$t_debootstrap" "$DISK_SIZE" \
  "$INITRAMFS_MODULES" "$MIRROR" "$SEC_MIRROR" "${PACKAGES[@]}" <<'EOF'
import json, sys, datetime
out, base, h, suites, kver, secs, tdb, size, mods, mirror, sec, *pkgs = sys.argv[1:]
json.dump({
    "base": base, "hash": h, "suites": suites.split(), "variant": "apt", "packages": pkgs,
    "kernel": kver, "initramfs_modules": mods.split(), "disk_size": size,
    "mirrors": [mirror, sec],
    "built_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "build_seconds": int(secs), "mmdebstrap_seconds": int(tdb),
    "boot_append": "root=/dev/vda rw console=ttyS0 net.ifnames=0",
}, open(out, "w"), indent=2)
open(out, "a").write("\n")
EOF

chmod 755 "$TMP"
mv -T "$TMP" "$DIR"   # atomic: the directory appears complete or not at all
trap - EXIT
say "built in ${secs}s ($(du -h --apparent-size "$DIR/disk.qcow2" | cut -f1) qcow2, kernel $kver): $DIR"
echo "$DIR"
