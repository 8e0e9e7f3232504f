#!/bin/sh
# parbake payload install: every role and the parbake runtime at /opt/parbake, replacing what an
# earlier payload put there, and the launch units enabled as `systemctl enable` would, by their
# multi-user.target.wants/ links (plain files: no running systemd is needed, and the builder,
# which has no launch spec, never starts them). Every bake and every payload refresh runs it on
# the builder as root, from the uploaded payload at /tmp/parbake-payload.
set -eu
rm -rf /opt/parbake/roles
mkdir -p /opt/parbake/roles /opt/parbake/bin /opt/parbake/lib/callback_plugins /opt/parbake/layers /etc/systemd/system/multi-user.target.wants
cp -a --no-preserve=ownership /tmp/parbake-payload/all-roles/. /opt/parbake/roles/
install -m 0755 /tmp/parbake-payload/runtime/parbake-roles /opt/parbake/bin/parbake-roles
rm -rf /opt/parbake/lib/parbake_runner
install -D -m 0644 -t /opt/parbake/lib/parbake_runner /tmp/parbake-payload/lib/parbake_runner/*.py
install -m 0644 /tmp/parbake-payload/runtime/parbake_events.py /opt/parbake/lib/callback_plugins/parbake_events.py
for unit in parbake-launch.service parbake-ready.target; do
  install -m 0644 /tmp/parbake-payload/runtime/$unit /etc/systemd/system/$unit
  ln -sfn /etc/systemd/system/$unit /etc/systemd/system/multi-user.target.wants/$unit
done
echo "parbake: payload installed at /opt/parbake ($(ls /opt/parbake/roles | wc -l) roles)"
