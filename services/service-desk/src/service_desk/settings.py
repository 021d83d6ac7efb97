"""Service desk settings: environment variables prefixed SERVICE_DESK_, nested with `__`.
The rules (SLA targets, tiers, routing, compensation standards, templates) live in a
TOML file (SERVICE_DESK_RULES_FILE) over documented defaults (README)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from shopfloor_runtime.settings import ApiSettings, ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("SERVICE_DESK_")

    api: ApiSettings = ApiSettings(port=8005)
    rules_file: Path | None = Field(
        None, description="TOML file of rules over the defaults (README: service desk rules)"
    )
    tick_s: float = Field(1.0, gt=0, description="how often SLA deadlines are checked")
