#!/usr/bin/env bash
# make demo: bake the example web stack and launch it in a local VM, then ask the Django app
# over HTTP. Everything runs for real (Packer, Ansible, qemu, cloud-init NoCloud).
set -euo pipefail
cd "$(dirname "$0")/.."
pb=./target/debug/parbake
say() { printf '\n== %s\n' "$*" >&2; }
say "the plan: what bakes where, and what runs at launch"
$pb plan web
say "bake (the first run builds the Debian base disk, then layer 1; later runs are cached)"
$pb bake web
say "launch: boots layer 1 with the web stack's user-data; the launch roles run at boot"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
$pb launch web --keep --json > "$report"
read -r pid port dir < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["kept"]["pid"], r["http_port"], r["kept"]["dir"])' "$report")
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("boot-to-ready %.1fs:" % r["boot_to_ready_s"], ", ".join("%s %.1fs" % (x["name"], x["duration_s"] or 0) for x in r["status"]["roles"]))' "$report"
say "the web app, through the VM's port forward"
curl -fsS "http://127.0.0.1:$port/"
echo
say "stopping the VM"
kill "$pid"
rm -rf "$dir"
say "next: parbake bake web --promote nginx --promote webapp && parbake launch web --promote nginx --promote webapp"
