"""The runner's package, imported as the image's entry point imports it: its parent directory
(src/contract/assets) on sys.path. Nothing is compiled into the repository's asset tree."""

import os
import sys

sys.dont_write_bytecode = True
ASSETS = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "src", "contract", "assets")
)
sys.path.insert(0, ASSETS)
