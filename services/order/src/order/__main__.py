"""`python -m order`: the order service (API, relay, consumer, read model, deadlines);
`python -m order republish | rebuild-projections` for operators."""

from __future__ import annotations

import sys

from shopfloor_runtime.servicecli import main

from order.bootstrap import build
from order.settings import Settings

if __name__ == "__main__":
    sys.exit(main("order", Settings, build))
