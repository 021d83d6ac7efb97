"""Settings of the velocity worker: environment variables prefixed RISK_WINDOWS_ (nested
with `__`: RISK_WINDOWS_BROKER__BOOTSTRAP_SERVERS, RISK_WINDOWS_BROKER__SESSION_TIMEOUT_MS),
and RISK_RULES_FILE, the rules file the whole risk service shares (its windows)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings
from shopfloor_runtime.settings import BrokerSettings, service_config

#: The largest window the rules allow (risk.rules.VelocityLimit.window_s).
LONGEST_WINDOW_S = 86_400


class WindowsSettings(BaseSettings):
    model_config = service_config("RISK_WINDOWS_")

    broker: BrokerSettings = BrokerSettings()
    app_id: str = Field(
        "risk-windows",
        description="faust app id: the consumer group, and the prefix of its changelog and "
        "repartition topics",
    )
    bucket_s: int = Field(60, gt=0, description="width of one tumbling bucket of the table")
    retain_s: int = Field(
        LONGEST_WINDOW_S + 3_600,
        description="buckets older than this are dropped; at least the longest window plus "
        "one bucket, so a window can grow to a day without losing state",
    )
    store: str = Field("memory://", description="faust table store: memory:// or rocksdb://")
    datadir: Path = Field(Path("data/risk-windows"), description="faust's data directory")
    replication: int = Field(1, ge=1, description="replicas of the topics faust creates")
    commit_interval_s: float = Field(
        2.8, gt=0, description="how often input offsets are committed (faust's default)"
    )
    seal_changelog: bool = Field(
        True,
        description="before recovering a changelog partition, write one tombstone to it "
        "alone, so its end offset is exact on brokers that report the last batch's first "
        "offset + 1 (the embedded broker); unnecessary on Apache Kafka",
    )
    tell: Literal["over-limit", "all"] = Field(
        "over-limit",
        description="which counts go to risk.velocity.v1: over-limit (only a count above its "
        "dimension's limit, the only ones that change an assessment; the default) or all "
        "(every order's count, for a risk service told to wait for them, "
        "RISK_VELOCITY_WAIT_S > 0)",
    )
    batch_size: int = Field(
        1000, gt=0, description="orders.v1 records the re-key takes from its stream at once"
    )
    batch_within_s: float = Field(
        0.05,
        gt=0,
        description="how long the re-key waits for a batch to fill: the delay it adds to a "
        "count at low traffic",
    )
    rules_check_s: float = Field(
        1.0, ge=0, description="how often the rules file's mtime is looked at"
    )
    rules_file: Path | None = Field(
        None, validation_alias=AliasChoices("RISK_RULES_FILE"), description="TOML rules"
    )
    log_level: str = "info"

    @model_validator(mode="after")
    def _retains_longest_window(self) -> Self:
        if self.retain_s < LONGEST_WINDOW_S + self.bucket_s:
            raise ValueError(
                f"retain_s must be at least {LONGEST_WINDOW_S + self.bucket_s} (the longest "
                "window the rules allow, plus one bucket)"
            )
        return self
