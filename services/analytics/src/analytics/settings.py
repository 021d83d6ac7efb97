"""Settings of the analytics worker: environment variables prefixed ANALYTICS_ (nested
with `__`: ANALYTICS_BROKER__BOOTSTRAP_SERVERS, ANALYTICS_API__PORT)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings
from shopfloor_runtime.settings import ApiSettings, BrokerSettings, service_config


class AnalyticsSettings(BaseSettings):
    model_config = service_config("ANALYTICS_")

    api: ApiSettings = ApiSettings(port=8006)
    broker: BrokerSettings = BrokerSettings()
    app_id: str = Field(
        "analytics",
        description="faust app id: the consumer group, and the prefix of its changelog topic",
    )
    datadir: Path = Field(Path("data/analytics"), description="faust's data directory")
    replication: int = Field(1, ge=1, description="replicas of the topics faust creates")
    batch_size: int = Field(
        5000, gt=0, description="events taken from the stream and applied as one batch"
    )
    batch_within_s: float = Field(
        0.2, gt=0, description="how long a batch waits to fill before it is applied"
    )
    commit_interval_s: float = Field(
        2.8, gt=0, description="how often input offsets are committed (faust's default)"
    )
    seal_changelog: bool = Field(
        True,
        description="before recovering a changelog partition, write one tombstone to it "
        "alone, so its end offset is exact on the embedded broker (see "
        "shopfloor_runtime.fausttables); unnecessary on Apache Kafka",
    )
    rules_file: Path | None = Field(
        None, description="TOML file of rules over the defaults (README: analytics)"
    )
    rules_check_s: float = Field(
        2.0, ge=0, description="how often the rules file's mtime is looked at (reloaded on change)"
    )
    advertised_url: str | None = Field(
        None,
        description="the URL the other workers of the group reach this worker's API at, to "
        "add its figures to theirs (analytics.group); default http://<api host>:<api port>, "
        "with this machine's host name when the API listens on every interface",
    )
    peer_timeout_s: float = Field(
        2.0, gt=0, description="how long a worker waits for another's figures"
    )
    log_level: str = "info"

    def url(self) -> str:
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        host = self.api.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 (reading the setting, not binding)
            host = socket.gethostname()
        return f"http://{host}:{self.api.port}"
