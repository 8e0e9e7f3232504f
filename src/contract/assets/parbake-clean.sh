#!/bin/sh
# parbake image clean-up: every instance launched from this image must boot as a new machine.
set -eu
# the builder's own first boot may still be in cloud-init (a payload refresh runs no role and
# so does not wait for it, as a bake does): cleaning under it fails on the files it still
# writes. Wait, bounded; a cloud-init that reports an error has finished all the same.
timeout 300 cloud-init status --wait >/dev/null 2>&1 || true
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
