"""parbake-roles: runs a stack's launch roles on the instance, from the copies on the image.

Installed by parbake at /opt/parbake/bin/parbake-roles (with this package at
/opt/parbake/lib/parbake_runner/); started by parbake-launch.service
on every boot while /var/lib/parbake/launch.json exists (and, on images baked before the unit,
by the user-data's bootstrap). Re-running it by hand is safe: roles that already succeeded for
the same launch spec are skipped (use --force to run them again); once the launch of a spec
succeeded, a run does nothing. A run that was killed or stopped mid-role (a reboot) leaves
status.json `running`: the next run resumes it, skipping the roles done, running the
interrupted one again, under the same deadline (`launch_timeout_s` in the spec, counted from
the launch's first start), and records the resume (`resumed`, the role's `note`). Progress
lines go to stdout (the journal); the result lines to the console too.

After the roles, the spec's `checks` (the stack file's `checks:`) decide the result: each is
probed until it passes or its timeout passes (http, unit, port, command, file; see
run_check). A failed check fails the launch, naming it; a later run probes them again.

  parbake-roles launch /var/lib/parbake/launch.json [--force]
  parbake-roles shim --roles-dir DIR --out DIR --list ROLES.json

`shim` builds the stand-ins of roles baked by an earlier layer (see build_shims); the bake of
a stack layer, `parbake validate` and scripts/chroot-roles.sh call it, `launch` calls the
function.

The runner is this package, one module per concern: spec (the launch spec and the image
manifest), shims (roles and shims), secret (secrets and the one redact()), events (the task
events: the callback's lines and their reading), checks, status (status.json, the console,
launch.log, timing), resume (locking and resuming), roles (each role's outcome), playbook (the
launch's ansible-playbook), launch (one launch), ec2 (the status tag), reading and deadline
(the reading rule and the launch's deadline), base (paths and formats) and cli. The image's
one entry point, /opt/parbake/bin/parbake-roles, imports it from /opt/parbake/lib/parbake_runner/.

Writes /var/lib/parbake/status.json (per-role status and duration), logs to
/var/log/parbake/, prints one summary line to the console, exits 1 on failure. The console
and the status tag carry parbake's own sentences only, never role output (public_status).
launch_timeout bounds everything it does, secrets and checks included (Deadline); every file
it reads is a regular file, read without blocking and to a bound (read_regular). With
`status_tag` in the launch spec (EC2), it also tags its instance `parbake:status`, signing
CreateTags with the instance profile's credentials from IMDSv2; best effort.
Python standard library only.

Values and templating (launch spec format 2; format 1 specs are read with no `literal`):
- `vars` are plain vars: Ansible templates them as usual, so `{{ 1 + 1 }}` becomes 2.
- `literal` names vars the user tagged `!unsafe`; `secrets` are references (`ssm:`, `file:`)
  resolved here. Both reach the roles byte for byte and are never templated: the vars file
  carries them in Ansible's own encoding of unsafe values, {"__ansible_unsafe": value}.
  A `file:` secret loses its trailing newlines, nothing else. (Ansible still turns the result
  of a template that is exactly a list, dict, True or False literal into that type; that is
  Ansible's type conversion of a template's output, and it evaluates nothing.)
- Secret values never reach status.json or the events file: each is shown as <secret NAME>,
  as are its escaped, quoted and encoded forms (secret_forms) and, for a multi-line secret,
  each of its lines; a text holding a secret shorter than 8 characters is withheld whole.
  launch.log itself holds Ansible's full output and is readable by root only.
"""
