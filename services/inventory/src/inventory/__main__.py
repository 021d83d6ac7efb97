"""`python -m inventory`: the inventory service (API, relay, consumer, read models); operator
commands with `python -m inventory --help`."""

from __future__ import annotations

import sys

from shopfloor_runtime.servicecli import main

from inventory.bootstrap import InventoryService

if __name__ == "__main__":
    sys.exit(main(InventoryService))
