"""`python -m order`: the order service (API, relay, consumer, read models); operator
commands with `python -m order --help`."""

from __future__ import annotations

import sys

from shopfloor_runtime.servicecli import main

from order.bootstrap import OrderService

if __name__ == "__main__":
    sys.exit(main(OrderService))
