# parbake: the two commands are `make demo` and `make test`; each does its own set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PARBAKE_CACHE ?= /var/cache/parbake

.PHONY: help setup build test test-fast test-roles demo base-image lint fmt ci

help:
	@echo "make test        set up (idempotent), then run every test tier but the VM one"
	@echo "make demo        set up, then plan, render, validate and print the web stack's user-data"
	@echo "make setup       install packer, ansible-core (.venv), cloud-init (.tools), qemu, mmdebstrap"
	@echo "make test-fast   cargo tests only (no chroot role run)"
	@echo "make test-roles  apply every example role for real in a throwaway Debian chroot"
	@echo "make base-image  build (or reuse) the cached Debian 12 qcow2 for the local VM target"
	@echo "make lint        cargo fmt --check and clippy -D warnings"

setup:
	bash scripts/setup.sh

build:
	cargo build

# The whole suite: unit and integration tests with the real validators, then the roles
# applied for real (through the rendered bake payload and the launch runner) in a chroot.
test: setup
	PARBAKE_CHROOT_TEST=1 cargo test

test-fast:
	cargo test

test-roles: setup
	PARBAKE_CHROOT_TEST=1 cargo test --test parbake chroot -- --nocapture

base-image: setup
	bash scripts/base-image.sh

demo: setup build
	./target/debug/parbake plan web
	./target/debug/parbake plan web --promote nginx --promote webapp
	./target/debug/parbake render web --promote nginx -o .parbake/render/web
	./target/debug/parbake validate web
	./target/debug/parbake userdata web

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

ci: lint test
