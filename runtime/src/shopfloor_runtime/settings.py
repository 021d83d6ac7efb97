"""Settings groups every service shares; each service nests them under its own prefix
(ORDER_BROKER__BOOTSTRAP_SERVERS, ORDER_STORE__DSN, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class BrokerSettings(BaseModel):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    session_timeout_ms: int = Field(10_000, description="consumer group session timeout")
    heartbeat_interval_ms: int = 2_000
    request_timeout_ms: int = 15_000


class StoreSettings(BaseModel):
    dsn: SecretStr | None = Field(
        None, description="postgresql://user@host:port/db; unset means SQLite in data_dir"
    )
    data_dir: Path = Field(Path("data"), description="where the SQLite files live")
    pool_size: int = Field(10, description="PostgreSQL connections per process")


class RelaySettings(BaseModel):
    enabled: bool = True
    batch_size: int = Field(500, description="events read and sent per round")
    poll_interval_s: float = Field(
        0.2,
        description="longest pause when there is nothing to send (a save in the same "
        "process wakes the relay at once)",
    )
    incarnation_check_s: float = Field(5.0, description="how often to look for a new broker")


class ConsumerSettings(BaseModel):
    enabled: bool = True
    batch_size: int = Field(500, description="messages saved per transaction, at most")
    fetch_timeout_ms: int = 200
    fetch_max_wait_ms: int = Field(
        20,
        description="how long the broker may hold a fetch with no data; also the latency "
        "floor per hop on Tansu, which answers a waiting fetch only when this expires "
        "(measured: 500 ms gives a p50 delivery of 131 ms, 25 ms gives 7 ms)",
    )


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000


class ServiceSettings(BaseSettings):
    """The groups every service has. A service subclasses it with its own prefix, its
    port and its own groups:

        class Settings(ServiceSettings):
            model_config = service_config("ORDER_")
            api: ApiSettings = ApiSettings(port=8001)
    """

    api: ApiSettings = ApiSettings()
    broker: BrokerSettings = BrokerSettings()
    store: StoreSettings = StoreSettings()
    relay: RelaySettings = RelaySettings()
    consumer: ConsumerSettings = ConsumerSettings()


def service_config(prefix: str) -> SettingsConfigDict:
    """Environment variables `<PREFIX>GROUP__FIELD`, e.g. ORDER_STORE__DSN."""
    return SettingsConfigDict(env_prefix=prefix, env_nested_delimiter="__")
