"""`python -m risk`: the risk service (API, relay, consumer, read models, deadline and
rules-reload timers); operator commands with `python -m risk --help`. The velocity
windows run in their own worker: `python -m risk.windows`."""

from __future__ import annotations

import sys

from shopfloor_runtime.servicecli import main

from risk.bootstrap import RiskService

if __name__ == "__main__":
    sys.exit(main(RiskService))
