"""`python3 -m parbake_runner`: the same as /opt/parbake/bin/parbake-roles."""

import sys

from .cli import main

sys.exit(main())
