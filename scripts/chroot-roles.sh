#!/usr/bin/env bash
# Applies parbake's Ansible roles inside a throwaway Debian 12 (bookworm) chroot with the
# chroot's own (Debian) ansible-core, checks their EFFECTS, then applies them again and
# requires the second run to change nothing.
#
# usage: scripts/chroot-roles.sh [--once] [--rebuild] ROLE... | all | --stack STACK
#        scripts/chroot-roles.sh --syntax-check                  (host .venv ansible, all roles, no chroot)
#
#   ROLE...        roles to list in the playbook, in this order (meta dependencies are pulled in
#                  by Ansible as usual); e.g. nginx webapp
#   all            every role of every stack of the example project, in the order parbake runs
#                  them (`parbake plan STACK --format json`: the baked roles, then the launch roles)
#   --stack STACK  parbake's bake/launch split for STACK, from its plan: first apply the roles its
#                  image bakes with parbake_phase=bake, then its launch roles with
#                  parbake_phase=launch while the baked roles are shims (as the image's
#                  parbake-roles runner makes them: only tasks/main.yml and meta are no-ops)
#   --once         skip the idempotence (second) run
#   --rebuild      rebuild the cached chroot tarball even if it is fresh
#
# Which roles ran is read from the runs themselves (parbake's Ansible callback, as on an image):
# the effect checks are those of the roles that ran. With --stack, the baked roles must run in
# the bake run and not again at launch.
#
# environment:
#   PARBAKE                        the parbake binary for `all`, --stack and --syntax-check
#                                  (default target/debug/parbake; `make build`)
#   PARBAKE_CACHE                  cache root (default /var/cache/parbake); the bootstrapped root is
#                                  kept as $PARBAKE_CACHE/chroot/<recipe hash>.tar
#   PARBAKE_CHROOT_MAX_AGE_DAYS    rebuild a cached tarball older than this (default 14)
#   PARBAKE_MIRROR                 Debian mirror (default http://deb.debian.org/debian)
#   PARBAKE_SECURITY_MIRROR        (default http://deb.debian.org/debian-security)
#   PARBAKE_CA_DIR                 *.crt the chroot must trust, passed to role base as
#                                  base_ca_certificates (default /usr/local/share/ca-certificates,
#                                  i.e. whatever local CAs the host trusts, e.g. a TLS-intercepting proxy)
#   TMPDIR                         where the temporary root is unpacked (default /tmp)
#
# Needs root, mmdebstrap, unshare, ip (iproute2), flock. Always unmounts and removes its temp dir.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROLES_SRC=$REPO/roles
FIXTURES=$REPO/tests/chroot
HOST_ANSIBLE=$REPO/.venv/bin/ansible-playbook
CACHE_DIR=${PARBAKE_CACHE:-/var/cache/parbake}/chroot
MAX_AGE_DAYS=${PARBAKE_CHROOT_MAX_AGE_DAYS:-14}
MIRROR=${PARBAKE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${PARBAKE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CA_DIR=${PARBAKE_CA_DIR:-/usr/local/share/ca-certificates}
SUITE=bookworm
# What the roles need from the root before they run: Debian's ansible-core and what its
# modules use (python3-apt for apt, systemd's systemctl for the systemd module, sudo).
INCLUDE=(python3 python3-apt ansible-core ca-certificates systemd sudo)
RECIPE_VERSION=1   # bump to force every cache to rebuild
# Extra vars parbake always passes.
STACK=web
IMAGE=debian12
PHASE=launch
FIXTURE_INSTANCE_ID=i-0123456789abcdef0
# identity: "<stack>-" + first 12 chars of the sanitised instance id (--stack sets both)
EXPECTED_HOSTNAME=$STACK-i-0123456789

say() { printf 'chroot-roles: %s\n' "$*" >&2; }
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
# Long steps run in the background and are waited for: bash runs a trap (Ctrl-C, kill) only
# after a FOREGROUND command ends, but interrupts `wait` at once. The traps stop BG_PID.
BG_PID=""
bg_wait() {   # COMMAND... -> its exit status
  "$@" &
  BG_PID=$!
  local rc=0
  wait "$BG_PID" || rc=$?
  BG_PID=""
  return "$rc"
}
stop_bg() {   # TERM the running background step and give it a moment to clean up after itself
  [ -n "$BG_PID" ] || return 0
  # a step started with setsid leads its own process group: signal all of it, as Ctrl-C would
  kill -TERM -- "-$BG_PID" 2>/dev/null || kill -TERM "$BG_PID" 2>/dev/null || true
  local i; for i in $(seq 1 30); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 1; done
  BG_PID=""
}
die() { say "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------
# roles and their meta dependencies
# ---------------------------------------------------------------------------------------
py_yaml() {   # any python3 with PyYAML: Debian's (python3-yaml) or the project venv's
  local py
  for py in /usr/bin/python3 "$REPO/.venv/bin/python"; do
    if [ -x "$py" ] && "$py" -c 'import yaml' 2>/dev/null; then "$py" "$@"; return; fi
  done
  die "no python3 with PyYAML (apt-get install python3-yaml)"
}

PARBAKE=${PARBAKE:-$REPO/target/debug/parbake}
CALLBACK=$REPO/src/contract/assets/parbake_events.py
RUNNER_PACKAGE=$REPO/src/contract/assets/parbake_runner
RUNNER=$REPO/src/contract/assets/parbake-roles.py

# prints the roles parbake plans for STACK (the repo is the example project), each list on one
# line: the roles its image bakes (the top layer's `baked`), then the roles it runs at launch
plan_roles() {   # STACK
  [ -x "$PARBAKE" ] || die "no parbake binary at $PARBAKE (make build, or set PARBAKE)"
  local plan
  plan=$("$PARBAKE" --project "$REPO" --format json plan "$1" --target qemu) || die "parbake plan $1 failed"
  python3 -c 'import json, sys
plan = json.load(sys.stdin)
print(" ".join(plan["layers"][-1]["baked"]))
print(" ".join(r["name"] for r in plan["launch"]))' <<<"$plan"
}

# every role of every stack, in the order parbake runs them (baked, then launch), each once
all_roles() {
  local f lists lines=() order=() baked=() launch=()
  for f in "$REPO"/images/stacks/*.yml; do
    lists=$(plan_roles "$(basename "$f" .yml)") || exit 1
    mapfile -t lines <<<"$lists"
    read -r -a baked <<<"${lines[0]}"; read -r -a launch <<<"${lines[1]:-}"
    order+=("${baked[@]}" "${launch[@]}")
  done
  printf '%s\n' "${order[@]}" | awk '!seen[$0]++' | tr '\n' ' '
}

# prints the roles that have a task result in the given parbake_events files, first seen first
ran_roles() {   # EVENTS...
  python3 - "$@" <<'PY'
import json, sys
order = []
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        ev = json.loads(line) if line.strip() else {}
        if ev.get("event") in ("ok", "changed", "skipped", "failed", "ignored") \
                and ev.get("role") and ev["role"] not in order:
            order.append(ev["role"])
print(" ".join(order))
PY
}

write_playbook() {   # FILE ROLE...
  local file=$1; shift
  {
    echo "# written by scripts/chroot-roles.sh"
    echo "- name: parbake roles ($*)"
    echo "  hosts: all"
    echo "  gather_facts: true"
    echo "  roles:"
    local r; for r in "$@"; do echo "    - $r"; done
  } > "$file"
}

syntax_check() {   # ROLE...: the project's pinned host ansible-core, on the repo's roles
  [ -x "$HOST_ANSIBLE" ] || { say "skipping host syntax check: no $HOST_ANSIBLE (run scripts/setup.sh)"; return 0; }
  local pb; pb=$(mktemp "${TMPDIR:-/tmp}/parbake-syntax.XXXXXX.yml")
  write_playbook "$pb" "$@"
  local rc=0
  ANSIBLE_ROLES_PATH=$ROLES_SRC ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 \
    "$HOST_ANSIBLE" --syntax-check -i localhost, "$pb" \
    -e parbake_stack=$STACK -e parbake_image=$IMAGE -e parbake_phase=$PHASE >/dev/null || rc=$?
  rm -f "$pb"
  [ "$rc" = 0 ] || die "ansible-playbook --syntax-check failed for: $*"
  say "syntax check ok ($("$HOST_ANSIBLE" --version 2>/dev/null | sed -n 1p)): $*"
}

ONCE=""; REBUILD=""; ROLES=(); BAKED=(); STACK_SPLIT=""; ALL=""
while [ $# -gt 0 ]; do
  case $1 in
    --syntax-check) every=$(all_roles) || exit 1; read -r -a ROLES <<<"$every"; syntax_check "${ROLES[@]}"; exit 0 ;;
    --once) ONCE=1 ;;
    --rebuild) REBUILD=1 ;;
    --stack) [ $# -ge 2 ] || die "--stack needs a stack name"; STACK_SPLIT=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    all) ALL=1; every=$(all_roles) || exit 1; read -r -a ROLES <<<"$every" ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) ROLES+=("$1") ;;
  esac
  shift
done
if [ -n "$STACK_SPLIT" ]; then
  [ ${#ROLES[@]} -eq 0 ] || die "--stack takes its roles from the plan; give no roles with it"
  lists=$(plan_roles "$STACK_SPLIT") || exit 1
  mapfile -t split <<<"$lists"
  read -r -a BAKED <<<"${split[0]}"; read -r -a ROLES <<<"${split[1]:-}"
  [ ${#ROLES[@]} -gt 0 ] || die "stack $STACK_SPLIT runs no role at launch (its image bakes them all)"
  STACK=$STACK_SPLIT EXPECTED_HOSTNAME=$STACK_SPLIT-i-0123456789
fi
[ ${#ROLES[@]} -gt 0 ] || die "no roles given (usage: $0 [--once] [--rebuild] ROLE... | all | --stack STACK | --syntax-check)"
[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap, chroot, mounts)"
for tool in mmdebstrap unshare ip flock tar; do
  command -v "$tool" >/dev/null || die "missing $tool"
done
for r in "${BAKED[@]}" "${ROLES[@]}"; do
  [ -d "$ROLES_SRC/$r" ] || die "no role '$r' in $ROLES_SRC"
done
APPLIED=()   # the roles that ran (bake and first run), read from their events after the runs
has_role() { local r; for r in "${APPLIED[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }
say "roles: ${ROLES[*]}${BAKED:+ (baked first: ${BAKED[*]})}"
[ ${#BAKED[@]} -eq 0 ] || syntax_check "${BAKED[@]}"
syntax_check "${ROLES[@]}"

# ---------------------------------------------------------------------------------------
# 1. the bootstrapped root, cached by recipe
# ---------------------------------------------------------------------------------------
ARCH=$(dpkg --print-architecture)
SOURCES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main")
RECIPE="v$RECIPE_VERSION mmdebstrap --variant=apt --arch=$ARCH --include=$(IFS=,; echo "${INCLUDE[*]}") $SUITE $(printf '[%s] ' "${SOURCES[@]}")"
HASH=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-16)
TARBALL=$CACHE_DIR/$SUITE-$HASH.tar
mkdir -p "$CACHE_DIR"

T0=$(now)
CHROOT_SOURCE=""
exec 9>"$CACHE_DIR/.lock"
flock 9   # one builder at a time; others wait and then reuse
if [ -z "$REBUILD" ] && [ -s "$TARBALL" ] && [ -z "$(find "$TARBALL" -mtime +"$MAX_AGE_DAYS")" ]; then
  CHROOT_SOURCE="cached"
else
  say "bootstrapping $SUITE into $TARBALL (recipe $HASH: $RECIPE)"
  rm -f "$CACHE_DIR"/.partial.*.tar   # left by a builder that was killed (we hold the lock)
  partial=$CACHE_DIR/.partial.$$.tar
  trap 'stop_bg; rm -f "$partial"' EXIT
  # its own process group: mmdebstrap's main process only waits for its workers on a
  # signal, so stopping it means signalling the whole group
  bg_wait setsid mmdebstrap --quiet --variant=apt --arch="$ARCH" --include="$(IFS=,; echo "${INCLUDE[*]}")" \
    --aptopt='Acquire::Retries "3"' "$SUITE" "$partial" "${SOURCES[@]}" \
    || die "mmdebstrap failed"
  mv -f "$partial" "$TARBALL"
  trap - EXIT
  find "$CACHE_DIR" -maxdepth 1 -name "$SUITE-*.tar" ! -name "$(basename "$TARBALL")" -delete   # old recipes
  CHROOT_SOURCE="built"
fi
flock -u 9; exec 9>&-
T_BUILD=$(elapsed "$T0")
say "chroot tarball $CHROOT_SOURCE in ${T_BUILD}s: $TARBALL ($(du -h "$TARBALL" | cut -f1))"

# ---------------------------------------------------------------------------------------
# 2. a throwaway root: unpack, mount, always clean up
# ---------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/parbake-chroot.XXXXXX")
R=$WORK/root
MOUNTS=()

kill_chroot_procs() {   # processes this harness started in the chroot (their root is $R)
  local sig p pids
  for sig in TERM KILL; do
    pids=()
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && pids+=("${p#/proc/}")
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    kill -s "$sig" "${pids[@]}" 2>/dev/null || true
    sleep 1
  done
}

cleanup() {
  local rc=$? i m
  set +e
  trap - EXIT INT TERM
  stop_bg
  kill_chroot_procs
  for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do
    m=${MOUNTS[i]}
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
  done
  # anything still mounted below $WORK (deepest first) would make rm -rf reach the host
  while read -r m; do umount -l "$m" 2>/dev/null; done < <(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r)
  if awk -v w="$WORK/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    say "NOT removing $WORK: something is still mounted below it"
    rc=1
  else
    rm -rf --one-file-system "$WORK"
  fi
  [ "$rc" = 0 ] || say "failed (exit $rc); cleaned up"
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

domount() {   # mount ARGS... TARGET (TARGET last)
  mount "$@"
  MOUNTS+=("${!#}")
}

T0=$(now)
mkdir "$R"
bg_wait tar -C "$R" --numeric-owner -xpf "$TARBALL"
domount -t proc proc "$R/proc"
domount -t sysfs -o ro sysfs "$R/sys"
domount --bind /dev "$R/dev"
domount --bind /dev/pts "$R/dev/pts"
domount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
rm -f "$R/etc/resolv.conf"
cp -L /etc/resolv.conf "$R/etc/resolv.conf"
printf '#!/bin/sh\n# chroot-roles.sh: no daemons are started in this chroot\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
# playbooks live in play/, NOT beside roles/: Ansible searches <playbook dir>/roles before
# ANSIBLE_ROLES_PATH, which would bypass the --baked stand-ins
mkdir -p "$R/opt/parbake/harness" "$R/opt/parbake/play" "$R/run/cloud-init" "$R/etc/cloud/cloud.cfg.d"
cp -a "$ROLES_SRC" "$R/opt/parbake/roles"
cp "$FIXTURES/unit-exec.py" "$FIXTURES/webapp-live.sh" "$R/opt/parbake/harness/"
# what cloud-init would have left at boot (its config dir and instance data), so the roles find an instance id
cp "$FIXTURES/instance-data.json" "$R/run/cloud-init/instance-data.json"
# parbake's callback, as on an image: each run's task events say which roles ran (it imports
# the runner's package, beside it in lib/)
mkdir -p "$R/opt/parbake/lib/callback_plugins" "$R/opt/parbake/lib/parbake_runner" "$R/opt/parbake/events"
cp "$CALLBACK" "$R/opt/parbake/lib/callback_plugins/"
cp "$RUNNER_PACKAGE"/*.py "$R/opt/parbake/lib/parbake_runner/"
write_playbook "$R/opt/parbake/play/site.yml" "${ROLES[@]}"
LAUNCH_ROLES_PATH=/opt/parbake/roles
if [ ${#BAKED[@]} -gt 0 ]; then
  write_playbook "$R/opt/parbake/play/bake.yml" "${BAKED[@]}"
  # the baked roles' shims, found first, built by the runner as on an image: their
  # tasks/main.yml and meta dependencies are no-ops, the rest (handlers, defaults...) is theirs
  python3 -c 'import json, sys; json.dump(sys.argv[1:], sys.stdout)' "${BAKED[@]}" > "$WORK/baked.json"
  python3 "$RUNNER" shim --roles-dir "$R/opt/parbake/roles" --out "$R/opt/parbake/baked" \
    --list "$WORK/baked.json" || die "could not build the shims of the baked roles"
  LAUNCH_ROLES_PATH=/opt/parbake/baked:/opt/parbake/roles
fi
# CAs the host trusts locally (e.g. a TLS-intercepting egress proxy) go to role base, so pip
# inside the chroot reaches PyPI; on a machine without local CAs the list is empty.
py_yaml - "$CA_DIR" > "$R/opt/parbake/harness-vars.json" <<'PY'
import glob, json, os, sys
certs = [{"name": "local-" + os.path.splitext(os.path.basename(p))[0], "pem": open(p).read()}
         for p in sorted(glob.glob(os.path.join(sys.argv[1], "*.crt")))]
json.dump({"base_ca_certificates": certs}, sys.stdout)
PY
say "root unpacked and mounted in $(elapsed "$T0")s at $R"

# commands in the chroot get a clean environment (plus proxy/pip settings, if the host has any)
CHROOT_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
            DEBIAN_FRONTEND=noninteractive)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
         PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT; do
  [ -n "${!v:-}" ] && CHROOT_ENV+=("$v=${!v}")
done
inch() { env -i "${CHROOT_ENV[@]}" chroot "$R" "$@"; }

# ---------------------------------------------------------------------------------------
# 3. apply the roles (twice), with the chroot's own ansible-playbook
# ---------------------------------------------------------------------------------------
HOST_HOSTNAME=$(hostname)
run_playbook() {   # LOG [PLAYBOOK PHASE ROLES_PATH]
  bg_wait playbook "$1" "${2:-/opt/parbake/play/site.yml}" "${3:-$PHASE}" "${4:-$LAUNCH_ROLES_PATH}"
}
playbook() {   # LOG PLAYBOOK PHASE ROLES_PATH (events in /opt/parbake/events/<LOG's name>.jsonl)
  # a private UTS namespace: even a role that ran `hostname` could not rename the host
  env -i "${CHROOT_ENV[@]}" ANSIBLE_ROLES_PATH="$4" ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
    ANSIBLE_CALLBACK_PLUGINS=/opt/parbake/lib/callback_plugins ANSIBLE_CALLBACKS_ENABLED=parbake_events \
    PARBAKE_EVENTS="/opt/parbake/events/$(basename "$1" .log).jsonl" \
    unshare --uts --fork chroot "$R" ansible-playbook -c local -i localhost, "$2" \
    -e parbake_stack=$STACK -e parbake_image=$IMAGE -e parbake_phase="$3" -e @/opt/parbake/harness-vars.json \
    2>&1 | tee "$1"
  return "${PIPESTATUS[0]}"
}
recap() {   # LOG KEY -> the number in PLAY RECAP
  awk -v k="$2" '/^localhost[[:space:]]+:/ { for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2 && kv[1] == k) print kv[2] }' "$1" | tail -1
}
changed_tasks() {   # LOG -> the tasks that reported "changed"
  awk '/^(TASK|RUNNING HANDLER) \[/ { t = $0; sub(/ \**$/, "", t) } /^changed: / { print "  " t ": " $0 }' "$1"
}

T_BAKE="-"
if [ ${#BAKED[@]} -gt 0 ]; then
  say "baking roles: ${BAKED[*]} (parbake_phase=bake)"
  T0=$(now)
  run_playbook "$WORK/bake.log" /opt/parbake/play/bake.yml bake /opt/parbake/roles || die "playbook failed (bake), see the output above"
  T_BAKE=$(elapsed "$T0")
  say "bake run: ${T_BAKE}s, ok=$(recap "$WORK/bake.log" ok) changed=$(recap "$WORK/bake.log" changed)"
fi
say "applying roles: ${ROLES[*]}"
T0=$(now)
run_playbook "$WORK/run1.log" || die "playbook failed (first run), see the output above"
T_RUN1=$(elapsed "$T0")
CHANGED1=$(recap "$WORK/run1.log" changed)
say "first run: ${T_RUN1}s, ok=$(recap "$WORK/run1.log" ok) changed=$CHANGED1"
cp "$R/etc/parbake/identity.json" "$WORK/identity.run1" 2>/dev/null || true
events() { printf '%s/opt/parbake/events/%s.jsonl' "$R" "$1"; }
BAKE_RAN=$(ran_roles "$(events bake)")
RUN1_RAN=$(ran_roles "$(events run1)")
read -r -a APPLIED <<<"$(ran_roles "$(events bake)" "$(events run1)")"
say "roles that ran: ${BAKE_RAN:+bake: $BAKE_RAN; }first run: $RUN1_RAN"

T_RUN2="-"; CHANGED2="-"
if [ -z "$ONCE" ]; then
  say "applying roles again (must change nothing)"
  T0=$(now)
  run_playbook "$WORK/run2.log" || die "playbook failed (second run), see the output above"
  T_RUN2=$(elapsed "$T0")
  CHANGED2=$(recap "$WORK/run2.log" changed)
  say "second run: ${T_RUN2}s, ok=$(recap "$WORK/run2.log" ok) changed=$CHANGED2"
fi

# ---------------------------------------------------------------------------------------
# 4. effects
# ---------------------------------------------------------------------------------------
PASSED=0; FAILED=0; FAILURES=()
pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf '  FAIL  %s%s\n' "$1" "${2:+: $2}"; }
check() {   # DESCRIPTION COMMAND... (passes when the command exits 0)
  local d=$1 out; shift
  if out=$("$@" 2>&1); then pass "$d"; else fail "$d" "$(printf '%s' "$out" | tail -3 | tr '\n' ' ')"; fi
}
expect() {   # DESCRIPTION ACTUAL EXPECTED-SUBSTRING
  case $2 in *"$3"*) pass "$1" ;; *) fail "$1" "got '$2', want '$3'" ;; esac
}
enabled() { inch systemctl is-enabled "$1"; }
json_get() { inch python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d.get(sys.argv[2], ""))' "$1" "$2"; }

say "checking effects"
sorted() { printf '%s\n' "$@" | sort -u | tr '\n' ' '; }
same() {   # DESCRIPTION ACTUAL EXPECTED (exactly)
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', want '$3'"; fi
}
# roles parbake planned are closed under their dependencies: exactly they run (all, --stack)
if [ -n "$STACK_SPLIT" ]; then
  same "the bake run ran exactly the baked roles" "$(sorted $BAKE_RAN)" "$(sorted "${BAKED[@]}")"
  same "the launch run ran exactly the launch roles (no baked role again)" "$(sorted $RUN1_RAN)" "$(sorted "${ROLES[@]}")"
elif [ -n "$ALL" ]; then
  same "the run ran exactly every role of every stack" "$(sorted $RUN1_RAN)" "$(sorted "${ROLES[@]}")"
else
  for r in "${ROLES[@]}"; do
    check "role $r ran" has_role "$r"
  done
fi
if [ -z "$ONCE" ]; then
  if [ "$CHANGED2" = 0 ]; then pass "second run changed nothing (changed=0)"
  else fail "second run changed nothing" "changed=$CHANGED2"; changed_tasks "$WORK/run2.log"; fi
fi
expect "the host's hostname is untouched" "$(hostname)" "$HOST_HOSTNAME"
check "no role left a daemon running in the chroot" test -z "$(for p in /proc/[0-9]*; do [ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && echo "${p#/proc/}"; done)"

if has_role base; then
  expect "base: /etc/timezone" "$(cat "$R/etc/timezone")" "Etc/UTC"
  expect "base: /etc/localtime -> zoneinfo" "$(readlink "$R/etc/localtime")" "/usr/share/zoneinfo/Etc/UTC"
  expect "base: date reports UTC" "$(inch date +%Z)" "UTC"
  check "base: journald drop-in sets SystemMaxUse" grep -qx 'SystemMaxUse=200M' "$R/etc/systemd/journald.conf.d/parbake.conf"
  check "base: packages installed" inch dpkg-query -W ca-certificates curl less vim-tiny tzdata python3-apt
  for crt in "$CA_DIR"/*.crt; do
    [ -e "$crt" ] || continue
    name=local-$(basename "$crt" .crt)
    check "base: CA $name trusted" inch test -e "/etc/ssl/certs/$name.pem"
  done
fi
if has_role users; then
  expect "users: ops exists with bash" "$(inch getent passwd ops)" ":/home/ops:/bin/bash"
  expect "users: ops is in group sudo" " $(inch id -nG ops) " " sudo "
  check "users: sudoers valid" inch visudo -c
  expect "users: ops may sudo without password" "$(inch sudo -n -l -U ops)" "NOPASSWD: ALL"
fi
if has_role python; then
  check "python: /opt/venvs exists" test -d "$R/opt/venvs"
  check "python: venv and pip work" inch sh -c 'python3 -m venv /tmp/v && /tmp/v/bin/pip --version && rm -rf /tmp/v'
fi
if has_role nginx; then
  check "nginx: nginx -t" inch nginx -t
  check "nginx: default site removed" test ! -e "$R/etc/nginx/sites-enabled/default"
  expect "nginx: enabled" "$(enabled nginx.service)" "enabled"
fi
if has_role webapp; then
  expect "webapp: Django and gunicorn pinned" \
    "$(inch /opt/venvs/webapp/bin/python -c 'import django, gunicorn; print(django.get_version(), gunicorn.__version__)')" "4.2.30 23.0.0"
  check "webapp: manage.py check --deploy (no warnings)" inch sh -c \
    'cd /opt/webapp && PYTHONDONTWRITEBYTECODE=1 /opt/venvs/webapp/bin/python webapp.py check --deploy --fail-level WARNING'
  expect "webapp: enabled" "$(enabled webapp.service)" "enabled"
  expect "webapp: runs as user webapp" "$(grep '^User=' "$R/etc/systemd/system/webapp.service")" "User=webapp"
  # gunicorn (as its unit runs it) and nginx, live, in private network and UTS namespaces
  # (ports 80/8000 of the host are not touched; the hostname is the chroot's /etc/hostname)
  live=$(env -i "${CHROOT_ENV[@]}" unshare --net --uts --fork sh -c \
    'ip link set lo up && hostname "$(cat "$1/etc/hostname")" && exec chroot "$1" /bin/bash /opt/parbake/harness/webapp-live.sh' \
    sh "$R" 2>&1) || true
  printf '%s\n' "$live" | sed 's/^/    | /'
  lv() { printf '%s\n' "$live" | sed -n "s/^$1=//p" | head -1; }
  expect "webapp: gunicorn serves 127.0.0.1:8000" "$(lv GUNICORN)" "up"
  expect "webapp: gunicorn runs as webapp" "$(lv GUNICORN_USER)" "webapp"
  expect "webapp: page names the stack" "$(lv BODY_DIRECT)" "stack=$STACK"
  if has_role identity; then
    expect "webapp: page names the instance and host" "$(lv BODY_DIRECT)" "instance=$FIXTURE_INSTANCE_ID host=$EXPECTED_HOSTNAME"
  else
    expect "webapp: page names the instance (cloud-init data)" "$(lv BODY_DIRECT)" "instance=$FIXTURE_INSTANCE_ID"
  fi
  expect "webapp: nginx on port 80 proxies to gunicorn" "$(lv BODY_NGINX)" "parbake webapp: stack=$STACK"
  expect "webapp: /healthz" "$(lv HEALTHZ_NGINX)" "ok"
  expect "webapp: identity is read per request" "$(lv BODY_CHANGED)" "stack=otherstack instance=i-live-change"
fi
if has_role worker; then
  expect "worker: timer enabled" "$(enabled worker-heartbeat.timer)" "enabled"
  check "worker: the job runs once as its unit would" inch python3 /opt/parbake/harness/unit-exec.py /etc/systemd/system/worker-heartbeat.service
  expect "worker: heartbeat.json names the stack" "$(json_get /var/lib/worker/heartbeat.json stack 2>&1)" "$STACK"
  expect "worker: heartbeat.json owned by worker" "$(inch stat -c %U /var/lib/worker/heartbeat.json 2>&1)" "worker"
fi
if has_role identity; then
  expect "identity: identity.json stack" "$(json_get /etc/parbake/identity.json stack 2>&1)" "$STACK"
  expect "identity: identity.json instance_id (cloud-init)" "$(json_get /etc/parbake/identity.json instance_id 2>&1)" "$FIXTURE_INSTANCE_ID"
  expect "identity: identity.json hostname" "$(json_get /etc/parbake/identity.json hostname 2>&1)" "$EXPECTED_HOSTNAME"
  check "identity: identity.json has set_at" test -n "$(json_get /etc/parbake/identity.json set_at)"
  if [ -z "$ONCE" ]; then
    check "identity: set_at kept by the second run" cmp "$WORK/identity.run1" "$R/etc/parbake/identity.json"
  fi
  expect "identity: /etc/hostname" "$(cat "$R/etc/hostname")" "$EXPECTED_HOSTNAME"
  check "identity: /etc/hosts maps 127.0.1.1" grep -Eq "^127\.0\.1\.1[[:space:]]+$EXPECTED_HOSTNAME\$" "$R/etc/hosts"
  check "identity: cloud-init told to preserve the hostname" grep -q '^preserve_hostname: true' "$R/etc/cloud/cloud.cfg.d/90-parbake-identity.cfg"
fi

say "figures: chroot $CHROOT_SOURCE ${T_BUILD}s |${BAKED:+ bake run ${T_BAKE}s |} first run ${T_RUN1}s (changed=$CHANGED1) | second run ${T_RUN2}s (changed=$CHANGED2)"
echo "chroot-roles: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ] || die "$FAILED check(s) failed: $(printf '%s; ' "${FAILURES[@]}")"
