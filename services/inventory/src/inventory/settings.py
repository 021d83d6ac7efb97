"""Inventory service settings: environment variables prefixed INVENTORY_, nested with `__`."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict
from shopfloor_runtime.settings import (
    ApiSettings,
    BrokerSettings,
    ConsumerSettings,
    RelaySettings,
    StoreSettings,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_", env_nested_delimiter="__")

    api: ApiSettings = ApiSettings(port=8002)
    broker: BrokerSettings = BrokerSettings()
    store: StoreSettings = StoreSettings()
    relay: RelaySettings = RelaySettings()
    consumer: ConsumerSettings = ConsumerSettings()
