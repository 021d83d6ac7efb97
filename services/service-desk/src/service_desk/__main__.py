"""`python -m service_desk`: the service desk (API, relay, consumer, read models, SLA
timer); operator commands with `python -m service_desk --help`."""

from __future__ import annotations

import sys

from shopfloor_runtime.servicecli import main

from service_desk.bootstrap import DeskService

if __name__ == "__main__":
    sys.exit(main(DeskService))
