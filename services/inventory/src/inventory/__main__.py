"""`python -m inventory`: the inventory service (API, relay, consumer, read models);
`python -m inventory republish | rebuild-projections` for operators."""

from __future__ import annotations

import sys

from shopfloor_runtime.servicecli import main

from inventory.bootstrap import build
from inventory.settings import Settings

if __name__ == "__main__":
    sys.exit(main("inventory", Settings, build))
