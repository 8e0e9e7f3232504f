"""Roles and shims: the stand-ins of roles baked by an earlier layer (build_shims), and the
`shim` subcommand the bake, `parbake validate` and scripts/chroot-roles.sh call."""

import json
import os
import sys

from .base import Failure
from .spec import valid_role_name

# The entry points Ansible looks for in a role's tasks/ and meta/ (ansible-core's
# playbook/role/__init__.py, _load_role_yaml): main, main.yml, main.yaml, main.json.
ROLE_MAIN = ("main", "main.yml", "main.yaml", "main.json")
SHIM_TASKS = (
    "# parbake shim: this role already ran in a baked layer; its entry point is a no-op.\n[]\n"
)


SHIM_META = (
    "# parbake shim: this role already ran in a baked layer; its dependencies did too.\n"
    "dependencies: []\n"
)


def build_shims(roles_dir, out, names):
    """The shim of each role in `names` (its real copy at roles_dir/NAME) at out/NAME, for a
    roles path that lists `out` before `roles_dir`. A shim stops a baked role from running
    again, and only that: Ansible follows a meta dependency on it into a no-op
    tasks/main.yml and `dependencies: []`, while its defaults, vars, handlers, files,
    templates, plugins and every other task file (`include_role ... tasks_from`) are the
    real ones. `out` must not exist or be empty."""
    for name in names:
        if not valid_role_name(name):
            raise Failure(
                "cannot shim role %s: not a role name (name or namespace.name)" % json.dumps(name)
            )
    names = sorted(set(names))
    for name in names:
        if not os.path.isdir(os.path.join(roles_dir, name)):
            raise Failure("cannot shim role %s: it is not installed in %s" % (name, roles_dir))
    if os.path.lexists(out) and not (
        os.path.isdir(out) and not os.path.islink(out) and not os.listdir(out)
    ):
        raise Failure("cannot build shims in %s: it exists and is not an empty directory" % out)
    try:
        os.makedirs(out, exist_ok=True)
        for name in names:
            build_shim(os.path.join(roles_dir, name), os.path.join(out, name))
    except OSError as e:
        raise Failure("cannot build the shims in %s: %s" % (out, e)) from None


def build_shim(real, shim):
    """One role's shim: a directory of relative symlinks to the real role's entries (relative,
    so a shim built outside a chroot works inside it), but for tasks/, a directory of links
    to every task file except the entry point, which is a no-op, and meta/, whose main.yml
    is `dependencies: []`. The rest of meta/ is dropped: Ansible reads only meta/main and
    meta/argument_specs there, and a role's argument specs would add a validation task to
    the no-op entry point that checks options its dependants never passed (the real run,
    at bake, had them)."""
    real = os.path.realpath(real)
    os.makedirs(os.path.join(shim, "tasks"))
    os.makedirs(os.path.join(shim, "meta"))
    for entry in sorted(os.listdir(real)):
        if entry not in ("tasks", "meta"):
            link_into(os.path.join(real, entry), shim)
    tasks = os.path.join(real, "tasks")
    if os.path.isdir(tasks):
        for entry in sorted(os.listdir(tasks)):
            if entry not in ROLE_MAIN:
                link_into(os.path.join(tasks, entry), os.path.join(shim, "tasks"))
    with open(os.path.join(shim, "tasks", "main.yml"), "w") as f:
        f.write(SHIM_TASKS)
    with open(os.path.join(shim, "meta", "main.yml"), "w") as f:
        f.write(SHIM_META)


def link_into(target, directory):
    """A relative symlink directory/<basename of target> -> target (target a real path)."""
    where = os.path.realpath(directory)
    os.symlink(os.path.relpath(target, where), os.path.join(directory, os.path.basename(target)))


def read_shim_list(path):
    """The role names of a shim list file: a JSON array of strings."""
    try:
        with open(path) as f:
            names = json.load(f)
    except OSError as e:
        raise Failure("cannot read the shim list %s: %s" % (path, e.strerror or e)) from None
    except ValueError as e:
        raise Failure("the shim list %s is not JSON: %s" % (path, e)) from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Failure("the shim list %s must be a JSON array of role names" % path)
    return names


def shim(args):
    try:
        build_shims(args.roles_dir, args.out, read_shim_list(args.list))
    except Failure as e:
        print("parbake-roles shim: %s" % e, file=sys.stderr)
        return 1
    return 0
