#!/bin/sh
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
