"""The image's one entry point finds the package where each layout puts it, and says so when
it is missing."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ASSETS

ENTRY = os.path.join(ASSETS, "parbake-roles.py")
PACKAGE = os.path.join(ASSETS, "parbake_runner")


def run(entry, *args):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, entry, *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize(
    "entry, package",
    [
        ("bin/parbake-roles", "lib/parbake_runner"),  # the image
        ("runtime/parbake-roles", "lib/parbake_runner"),  # a bake's payload
        ("launch-check/parbake-roles", "launch-check/parbake_runner"),  # parbake validate
    ],
)
def test_the_entry_point_finds_the_package(tmp_path, entry, package):
    (tmp_path / entry).parent.mkdir(parents=True)
    shutil.copy(ENTRY, tmp_path / entry)
    shutil.copytree(PACKAGE, tmp_path / package)
    out = run(str(tmp_path / entry), "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: parbake-roles [-h] {launch,shim}")
    assert not (tmp_path / package / "__pycache__").exists()


def test_without_its_package_the_entry_point_says_so(tmp_path):
    (tmp_path / "bin").mkdir()
    shutil.copy(ENTRY, tmp_path / "bin" / "parbake-roles")
    out = run(str(tmp_path / "bin" / "parbake-roles"), "--help")
    assert out.returncode == 1
    assert out.stderr.startswith("parbake-roles: the parbake_runner package is not installed")
