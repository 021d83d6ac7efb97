"""`python -m fulfilment`: the fulfilment service (API, relay, consumer, read models, wave
and delay timers); operator commands with `python -m fulfilment --help`."""

from __future__ import annotations

import sys

from shopfloor_runtime.servicecli import main

from fulfilment.bootstrap import FulfilmentService

if __name__ == "__main__":
    sys.exit(main(FulfilmentService))
