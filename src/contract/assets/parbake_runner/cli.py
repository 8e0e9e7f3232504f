"""The command line: `launch` (the launch roles of a spec) and `shim` (the shims of baked
roles)."""

import argparse
import signal

import parbake_runner

from .launch import launch
from .resume import Stopped, on_signal, stopped
from .shims import shim
from .status import report_early_failure


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="parbake-roles", description=parbake_runner.__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("launch", help="run the launch roles named in a launch spec")
    run.add_argument("spec")
    run.add_argument("--force", action="store_true", help="run roles that already succeeded again")
    m = sub.add_parser("shim", help="build the shims of roles baked by an earlier layer")
    m.add_argument("--roles-dir", required=True, help="where the real roles are")
    m.add_argument("--out", required=True, help="the shim directory to make (absent or empty)")
    m.add_argument("--list", required=True, help="a JSON file: an array of the role names to shim")
    m.add_argument(
        "--collections-dir",
        help="the vendored collections: overlay those with a role installed (ns.collection.role)",
    )
    args = p.parse_args(argv)
    if args.cmd == "shim":
        return shim(args)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        return launch(args)
    except Stopped as e:
        return stopped(e)
    except Exception as e:  # last resort: the status must still say failed
        return report_early_failure("parbake-roles crashed: %r" % (e,))
