#!/bin/sh
# Runs an ansible-core that needs a newer Python than the host's (2.20 and 2.21 need >= 3.12;
# Debian 12 has 3.11) inside a Debian 13 root made by `make setup`, as if it ran on the host:
# in a private mount namespace (nothing shows outside), the root gets the host's /proc, /dev,
# /sys, the temp dir and this repository at the same paths, then the program runs in the
# caller's directory with the caller's environment. The same process (exec all the way), in the
# same process group and PID namespace, so a runner that stops ansible-playbook's group stops it.
#
# usage: scripts/ansible-in-root.sh ROOT PROGRAM [ARG...]      (root: unshare, mount, chroot)
set -eu
[ $# -ge 2 ] || { echo "usage: $0 ROOT PROGRAM [ARG...]" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PARBAKE_IN_ROOT="$1" PARBAKE_IN_REPO="$REPO" PARBAKE_IN_CWD="$PWD"
shift
exec unshare --mount --propagation private -- /bin/sh -euc '
r=$PARBAKE_IN_ROOT
for d in /proc /sys /dev "${TMPDIR:-/tmp}" "$PARBAKE_IN_REPO"; do
  mkdir -p "$r$d"
  mount --rbind "$d" "$r$d"
done
cwd=$PARBAKE_IN_CWD
unset PARBAKE_IN_ROOT PARBAKE_IN_REPO PARBAKE_IN_CWD
exec chroot "$r" /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$cwd" "$@"
' sh "$@"
