# parbake: the two commands are `make demo` and `make test`; each does its own set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PARBAKE_CACHE ?= /var/cache/parbake
# parbake runs no program from a project's .venv/.tools unless asked: point it at this
# repository's pinned tools (make setup) explicitly
export PARBAKE_ANSIBLE_PLAYBOOK ?= $(CURDIR)/.venv/bin/ansible-playbook
export PARBAKE_ANSIBLE_GALAXY ?= $(CURDIR)/.venv/bin/ansible-galaxy
export PARBAKE_CLOUD_INIT ?= $(CURDIR)/.tools/bin/cloud-init

.PHONY: help setup build test test-fast test-python test-roles test-runner test-runner-matrix e2e e2e-debian13 e2e-team bench bench-native bench-scale bench-refresh bench-vendor demo base-image lint lint-python fmt ci

help:
	@echo "make test        set up (idempotent), then run the tests and the chroot role run"
	@echo "make demo        set up, then bake and launch the web stack in a local VM and ask it over HTTP"
	@echo "make setup       install packer, ansible-core (.venv), cloud-init (.tools), qemu, mmdebstrap"
	@echo "make test-fast   cargo tests only (no chroot role run)"
	@echo "make test-python the on-image runner's unit tests (pytest, seconds)"
	@echo "make test-runner-matrix  the runner tier on every ansible-core (2.14 2.17 2.19 2.20 2.21), timed"
	@echo "make e2e         real bakes in VMs, one VM launch, the launch mechanics natively (nspawn)"
	@echo "make e2e-team    the team step of make e2e alone: a team's repository on Debian 13"
	@echo "make e2e-debian13  Debian 13: build its base disk, bake the web base layer (VM), launch it natively"
	@echo "make    a team's repository: init, vendor, bake on Debian 13 (VM), launch natively with a check"
	@echo "make bench       boot-to-ready natively (systemd-nspawn), then on the local VM with bake times (slow)"
	@echo "make bench-native  only the native boot-to-ready table (minutes; bakes what is missing)"
	@echo "make bench-vendor  plan time with large vendored collections, cold and warm"
	@echo "make bench-scale plan, bake --all --dry-run and no-op bake --all on 200 roles, 50 stacks"
	@echo "make bench-refresh  what a role edit costs bake --all: rebake vs refresh, on a project copy (slow)"
	@echo "make test-roles  apply every example role for real in a throwaway Debian chroot"
	@echo "make base-image  build (or reuse) the cached Debian 12 qcow2 for the local VM target"
	@echo "make lint        fmt, clippy (and functions of at most 80 lines), the architecture check, ruff"

setup:
	bash scripts/setup.sh

build:
	cargo build

# The whole suite: unit and integration tests (real packer validate, ansible-playbook
# --syntax-check, cloud-init schema, the launch runner under real ansible-core), then every
# example role applied for real in a throwaway Debian chroot, twice (the second run must
# change nothing). The VM tier is `make e2e`.
test: setup test-python
	cargo test
	$(if $(RUNNER_NEWEST),$(MAKE) --no-print-directory test-runner RUNNER_ANSIBLE=$(RUNNER_NEWEST))
	bash scripts/chroot-roles.sh all

test-fast:
	cargo test

# The runner tier: the tests that run the on-image runner (parbake-roles) with a real
# ansible-core, on the one RUNNER_ANSIBLE names (PARBAKE_TEST_ANSIBLE: a minor of the matrix
# `make setup` installs, or a directory holding ansible-playbook). `cargo test` runs it on the
# pinned 2.14; `make test` adds the newest (about 2 min; `make test RUNNER_NEWEST=` skips it);
# `make test-runner-matrix` runs every version, timed.
RUNNER_TIER := runner:: runner_checks:: shims:: offline:: unsafe_values:: collection_roles::at_
RUNNER_MATRIX := 2.14 2.17 2.19 2.20 2.21
RUNNER_NEWEST := 2.21
RUNNER_ANSIBLE ?= 2.14
test-runner:
	PARBAKE_TEST_ANSIBLE=$(RUNNER_ANSIBLE) cargo test -q --test parbake -- $(RUNNER_TIER)

test-runner-matrix: setup
	cargo test --test parbake --no-run -q
	@for v in $(RUNNER_MATRIX); do \
	  start=$$(date +%s); \
	  if PARBAKE_TEST_ANSIBLE=$$v cargo test -q --test parbake -- $(RUNNER_TIER) > target/runner-matrix-$$v.log 2>&1; then r=ok; else r=FAILED; fi; \
	  printf 'runner tier on ansible-core %s: %s, %s, %ds (target/runner-matrix-%s.log)\n' $$v $$r \
	    "$$(grep -o '[0-9]* passed; [0-9]* failed' target/runner-matrix-$$v.log | tail -1)" $$(( $$(date +%s) - start )) $$v; \
	  [ $$r = ok ] || fail=1; \
	done; exit $${fail:-0}

# The on-image runner's pure parts (tests/python: spec, redaction, events, status, resume),
# with the pinned pytest in .venv; nothing is compiled into the repository.
test-python:
	PYTHONDONTWRITEBYTECODE=1 .venv/bin/pytest -q -p no:cacheprovider tests/python

test-roles: setup build
	bash scripts/chroot-roles.sh all

# Real bakes on the local VM target, one real VM launch, and the launch mechanics booted
# natively in systemd-nspawn (root), in a store under target/ removed afterwards.
e2e: setup
	bash scripts/base-image.sh >/dev/null
	bash scripts/base-image.sh --base debian-13 >/dev/null
	PARBAKE_E2E=1 cargo test --test parbake e2e -- --nocapture

# Debian 13 beside Debian 12 (not part of `make e2e`): its base disk, the example web stack's
# base layer baked on it by Packer (qemu), then launched natively with its checks (root).
e2e-debian13: setup
	bash scripts/base-image.sh --base debian-13 >/dev/null
	PARBAKE_E2E_DEBIAN13=1 cargo test --test parbake debian13 -- --nocapture

# the team step of `make e2e` alone, in its own store: a team's repository (tests/fixtures/
# team-repo) from init to two concurrent bakes on Debian 13 and a native launch
e2e-team: setup
	bash scripts/base-image.sh --base debian-13 >/dev/null
	PARBAKE_E2E_TEAM=1 cargo test --test parbake e2e_team_repo_alone -- --nocapture

# Boot-to-ready and bake times with ratios, medians of BENCH_RUNS (default 3). Not a test.
bench: setup build
	bash scripts/base-image.sh >/dev/null
	python3 scripts/bench_vendor.py
	python3 scripts/bench.py
	cargo build --release
	python3 scripts/bench_scale.py
	python3 scripts/bench_refresh.py

# The native part of `make bench` only: boot-to-ready in systemd-nspawn, medians of BENCH_RUNS.
bench-native: setup build
	BENCH_ONLY=native python3 scripts/bench.py

# what a role edit costs bake --all: a full rebake, a run role's edit, a launch-only role's edit
# (real qemu bakes and refreshes on a project copy; about 45 min under TCG).
bench-refresh: setup build
	bash scripts/base-image.sh >/dev/null
	python3 scripts/bench_refresh.py

# plan, bake --all --dry-run and the no-op bake --all on 200 roles and 50 stacks (no VM).
bench-scale: setup
	cargo build --release
	python3 scripts/bench_scale.py

# plan with large vendored collections, cold and warm (fast; BENCH_PIN=X.Y.Z adds two bakes).
bench-vendor: setup build
	python3 scripts/bench_vendor.py

base-image: setup
	bash scripts/base-image.sh

demo: setup build
	bash scripts/base-image.sh >/dev/null
	bash scripts/demo.sh

lint: lint-python
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --lib -- -D warnings -W clippy::too_many_lines
	python3 scripts/check-architecture.py

# ruff (pinned in .venv) over the runner's package and the Python tests: ruff.toml
lint-python:
	.venv/bin/ruff check
	.venv/bin/ruff format --check

fmt:
	cargo fmt

ci: lint test
