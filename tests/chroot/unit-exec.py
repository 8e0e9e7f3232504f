#!/usr/bin/python3
"""Run a systemd service's ExecStart= the way systemd would, without systemd (chroot test aid).

usage: unit-exec.py UNIT_FILE
Honours User=, Group=, WorkingDirectory=, Environment= and StateDirectory= of [Service];
ExecStart= must be a single command line (no prefixes such as '-' or '@').
"""
import grp
import os
import pwd
import shlex
import sys


def parse(unit_file):
    section, svc = None, {}
    with open(unit_file, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if section != "Service" or "=" not in line:
                continue
            key, value = (s.strip() for s in line.split("=", 1))
            svc.setdefault(key, []).append(value)
    return svc


def main(unit_file):
    svc = parse(unit_file)
    (exec_start,) = svc["ExecStart"]
    argv = shlex.split(exec_start)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for value in svc.get("Environment", []):
        for assignment in shlex.split(value):
            k, v = assignment.split("=", 1)
            env[k] = v
    user = svc.get("User", ["root"])[-1]
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(svc["Group"][-1]).gr_gid if "Group" in svc else pw.pw_gid
    for name in " ".join(svc.get("StateDirectory", [])).split():
        path = os.path.join("/var/lib", name)
        os.makedirs(path, exist_ok=True)
        os.chown(path, pw.pw_uid, gid)
    env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
    os.chdir(svc.get("WorkingDirectory", ["/"])[-1])
    os.setgroups([])
    os.setgid(gid)
    os.setuid(pw.pw_uid)
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    main(sys.argv[1])
