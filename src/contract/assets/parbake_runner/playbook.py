"""The launch's one ansible-playbook: its play, its vars file (literal vars and secrets
wrapped unsafe, never templated) and its environment."""

import os

from .base import HOME, ROOT, RUN
from .secret import resolve_secret
from .shims import OVERLAY
from .status import CONSOLE


def unsafe(value):
    """Ansible's JSON encoding of a value it must never template (ansible/parsing/ajson.py
    maps it through wrap_var); vars files are read with that decoder first. Only string
    leaves are wrapped, lists and maps are rebuilt around them, and numbers, booleans and
    null pass as they are (they cannot be templated): ansible-core 2.19 and later accept only
    a string in the wrapper, and one wrapped number, list or map makes them re-read the whole
    file as YAML, where every wrapper becomes an ordinary map whose content is templated."""
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, list):
        return [unsafe(v) for v in value]
    if isinstance(value, dict):
        return {k: unsafe(v) for k, v in value.items()}
    return value


def play_vars(spec):
    """The vars file's content: plain vars as they are (Ansible templates them), literal vars
    and resolved secrets wrapped unsafe (never templated), and parbake's own vars."""
    out = dict(spec["vars"])
    for name in spec["literal"]:
        out[name] = unsafe(spec["vars"][name])
    for name, ref in sorted(spec["secrets"].items()):
        out[name] = unsafe(resolve_secret(name, ref))
    out.update(
        parbake_stack=spec["stack"],
        parbake_image=spec["image"],
        parbake_phase="launch",
        parbake_layer=spec.get("layer", ""),
    )
    return out


def ansible_playbook():
    """The image's pinned ansible-core (a venv the bake made), else the distribution's."""
    pinned = os.path.join(HOME, "ansible", "bin", "ansible-playbook")
    return pinned if os.access(pinned, os.X_OK) else "ansible-playbook"


def mark_apt_lists_fresh(manifest, todo):
    """When a role of this launch has packages staged (stage_apt), the apt lists the bake
    downloaded them with are the ones to install from: refresh their time so they count as
    fresh. Ansible's apt module (2.14, get_cache_mtime) takes the age of
    /var/lib/apt/periodic/update-success-stamp, else of /var/lib/apt/lists, so a role with
    update_cache and cache_valid_time then reaches no mirror; with update_cache and no
    cache_valid_time it refreshes whatever the age."""
    if not set(todo) & set(manifest.get("staged_apt") or {}):
        return
    for rel in ("var/lib/apt/periodic/update-success-stamp", "var/lib/apt/lists"):
        if os.path.exists(os.path.join(ROOT, rel)):
            os.utime(os.path.join(ROOT, rel))


def launch_play(spec, vars_path, todo):
    """The launch's one play: the roles to run, with the spec's fact gathering (all facts when
    the spec says nothing, none when its list is empty, else that gather_subset)."""
    play = {
        "name": "parbake launch %s" % spec["stack"],
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": spec.get("facts") != [],
        # named, not discovered (discovery warns about /usr/bin/python3.13 on Debian 13); the
        # stack's own vars files still win over play vars
        "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
        "vars_files": [vars_path],
        "roles": todo,
    }
    if spec.get("facts"):
        play["gather_subset"] = spec["facts"]
    return play


def launch_env(shim, events, secrets_path):
    """ansible-playbook's environment at launch."""
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=shim + ":" + os.path.join(HOME, "roles"),
        ANSIBLE_CALLBACK_PLUGINS=os.path.join(HOME, "lib", "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="parbake_events",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCAL_TEMP=os.path.join(RUN, "tmp"),
        PARBAKE_EVENTS=events,
        # named, not discovered: discovery warns on newer Pythons (python3.13) and
        # can pick another interpreter than the image's; the bake names the same one
        ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
        PARBAKE_EVENTS_MIRROR=CONSOLE,
        PARBAKE_SECRETS=secrets_path,
        PYTHONUNBUFFERED="1",
    )
    # vendored collections and a pinned ansible-core, where the image has them
    collections = os.path.join(HOME, "collections")
    if os.path.isdir(collections):
        env["ANSIBLE_COLLECTIONS_PATH"] = collections
    # the collections whose roles are installed, overlaid (shims.build_overlay): found first
    overlay = os.path.join(shim, OVERLAY)
    if os.path.isdir(overlay):
        env["ANSIBLE_COLLECTIONS_PATH"] = overlay + ":" + collections
    # wheels staged at bake (stage_pip): every pip of the launch uses them, no index
    if os.path.isfile(os.path.join(HOME, "pip.conf")):
        env["PIP_CONFIG_FILE"] = os.path.join(HOME, "pip.conf")
    return env
