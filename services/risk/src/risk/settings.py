"""Risk service settings: environment variables prefixed RISK_, nested with `__`. The
rules themselves live in a TOML file (RISK_RULES_FILE), reloaded while running."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from shopfloor_runtime.settings import ApiSettings, ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("RISK_")

    api: ApiSettings = ApiSettings(port=8004)
    rules_file: Path | None = Field(
        None, description="TOML file of rules over the defaults (README: risk rules)"
    )
    reload_s: float = Field(2.0, gt=0, description="how often the rules file is checked")
    tick_s: float = Field(1.0, gt=0, description="how often deadlines are checked")
    address_wait_s: float = Field(
        60.0,
        gt=0,
        description="how long after the placement risk waits for the recipient's address "
        "(orders.private.v1) before it assesses without it (rule address.unknown, ordinary: "
        "a front-line operator looks; the order is not held for it); never less than "
        "velocity_wait_s",
    )
    velocity_wait_s: float = Field(
        0.0,
        ge=0,
        description="how long the first assessment waits for the stream processor's "
        "counts (at the latest this long after risk saw the placement); 0: assessed as soon "
        "as placement and address are in, and again when the counts come (a velocity hold "
        "may then follow a clearance, after the order was confirmed). Above 0, run the "
        "velocity worker with RISK_WINDOWS_TELL=all: by default it tells only counts over "
        "their limit, and every clean order would wait the whole time",
    )
