#!/usr/bin/python3
"""parbake-roles: the image's one entry point of the launch runner, the parbake_runner package
(installed beside it, at /opt/parbake/lib/parbake_runner/; its docstring says what it does).

  parbake-roles launch /var/lib/parbake/launch.json [--force]
  parbake-roles shim --roles-dir DIR --out DIR --list ROLES.json
"""

import os
import sys


def _package_parent():
    """The directory that holds the parbake_runner package: beside this file (the repository),
    in lib/ beside its directory (the image's bin/ and lib/, the bake's payload runtime/ and
    lib/), or its parent."""
    here = os.path.dirname(os.path.realpath(__file__))
    up = os.path.dirname(here)
    for d in (here, os.path.join(up, "lib"), up):
        if os.path.isfile(os.path.join(d, "parbake_runner", "__init__.py")):
            return d
    sys.exit("parbake-roles: the parbake_runner package is not installed beside %s" % here)


if __name__ == "__main__":
    sys.path.insert(0, _package_parent())
    sys.dont_write_bytecode = True  # the image's /opt/parbake stays as the bake installed it
    from parbake_runner.cli import main

    sys.exit(main())
