"""Inventory service settings: environment variables prefixed INVENTORY_, nested with `__`."""

from __future__ import annotations

from shopfloor_runtime.settings import ApiSettings, ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("INVENTORY_")

    api: ApiSettings = ApiSettings(port=8002)
