"""Roles and shims: the stand-ins of roles baked by an earlier layer (build_shims), and the
`shim` subcommand the bake, `parbake validate` and scripts/chroot-roles.sh call."""

import json
import os
import sys

from .base import Failure
from .spec import valid_collection_role, valid_role_name

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


# The overlay of the collections whose roles are installed, inside the shim directory: not a
# role name, so never a role on the roles path (render/playbook.rs, SHIM_COLLECTIONS).
OVERLAY = ".collections"


def build_shims(roles_dir, out, names, collections_dir=None):
    """The shim of each role in `names` (its real copy at roles_dir/NAME) at out/NAME, for a
    roles path that lists `out` before `roles_dir`. A shim stops a baked role from running
    again, and only that: Ansible follows a meta dependency on it into a no-op
    tasks/main.yml and `dependencies: []`, while its defaults, vars, handlers, files,
    templates, plugins and every other task file (`include_role ... tasks_from`) are the
    real ones. `out` must not exist or be empty.

    A role of a collection (`ns.collection.role`) is found by Ansible through its collection,
    not the roles path: with `collections_dir` (the vendored collections), out/.collections
    overlays each collection that has a role installed in roles_dir (build_overlay), to be
    listed before `collections_dir` in the collections path."""
    for name in names:
        if not valid_role_name(name):
            raise Failure(
                "cannot shim role %s: not a role name (name, namespace.name or "
                "namespace.collection.role)" % json.dumps(name)
            )
    if collections_dir is None and any(valid_collection_role(n) for n in names):
        raise Failure("cannot shim a collection's role without the collections (--collections-dir)")
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
            if not valid_collection_role(name):
                build_shim(os.path.join(roles_dir, name), os.path.join(out, name))
        if collections_dir is not None:
            build_overlay(roles_dir, os.path.join(out, OVERLAY), set(names), collections_dir)
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


def build_overlay(roles_dir, overlay, shimmed, collections_dir):
    """For each collection with a role installed in roles_dir (as `ns.collection.role`), a
    stand-in at overlay/ansible_collections/NS/COLLECTION that Ansible finds before the real
    one (a collection is taken whole from the first path that has it): relative links to every
    entry of the real collection but roles/, and in roles/ each installed role as its installed
    copy (the one the manifest's hash covers), or its shim when it is in `shimmed`, and every
    other role of the collection linked as it is."""
    installed = {}
    for entry in sorted(os.listdir(roles_dir)):
        if valid_collection_role(entry):
            ns, coll, role = entry.split(".")
            installed.setdefault((ns, coll), []).append(role)
    for (ns, coll), roles in sorted(installed.items()):
        real = os.path.join(collections_dir, "ansible_collections", ns, coll)
        if not os.path.isdir(real):
            raise Failure(
                "cannot overlay collection %s.%s: it is not in %s" % (ns, coll, collections_dir)
            )
        real = os.path.realpath(real)
        top = os.path.join(overlay, "ansible_collections", ns, coll)
        os.makedirs(os.path.join(top, "roles"))
        for entry in sorted(os.listdir(real)):
            if entry != "roles":
                link_into(os.path.join(real, entry), top)
        real_roles = os.path.join(real, "roles")
        others = sorted(os.listdir(real_roles)) if os.path.isdir(real_roles) else []
        for entry in others:
            if entry not in roles:
                link_into(os.path.join(real_roles, entry), os.path.join(top, "roles"))
        for role in roles:
            name = "%s.%s.%s" % (ns, coll, role)
            installed_copy = os.path.realpath(os.path.join(roles_dir, name))
            if name in shimmed:
                build_shim(installed_copy, os.path.join(top, "roles", role))
            else:
                link_as(installed_copy, os.path.join(top, "roles", role))


def link_as(target, path):
    """A relative symlink at `path` -> target (target a real path)."""
    where = os.path.realpath(os.path.dirname(path))
    os.symlink(os.path.relpath(target, where), path)


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
        build_shims(args.roles_dir, args.out, read_shim_list(args.list), args.collections_dir)
    except Failure as e:
        print("parbake-roles shim: %s" % e, file=sys.stderr)
        return 1
    return 0
