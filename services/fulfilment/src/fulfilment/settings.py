"""Fulfilment service settings: environment variables prefixed FULFILMENT_, nested with
`__` (or one JSON value per group, e.g. FULFILMENT_RULES='{"merge": false}')."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field, field_validator
from shopfloor_contracts.topics import ORDERS
from shopfloor_runtime.settings import ApiSettings, ServiceSettings, service_config


class WarehouseSettings(BaseModel):
    daily_capacity: int = Field(400, ge=1, description="shipments it can send per day")
    zones: list[str] = Field(
        default_factory=lambda: ["A", "B", "C"],
        min_length=1,
        description="pick zones, nearest packing first (the first holds fast movers)",
    )
    bins: dict[str, str] = Field(
        default_factory=dict,
        description='SKU -> bin ("B-03-2": zone, aisle, slot); unlisted SKUs get a stable '
        "slot outside the first zone",
    )


class CarrierSettings(BaseModel):
    carrier: str
    service: str = "standard"
    transit_days: int = Field(ge=0)
    base_cost: Decimal = Field(ge=0)
    per_kg: Decimal = Field(Decimal(0), ge=0)
    regions: list[str] = Field(
        default_factory=list, description='region or country prefixes ("DE", "FR-7"); empty: all'
    )
    max_weight_grams: int = Field(31_500, ge=1)
    max_value: Decimal = Field(Decimal(5000), gt=0)


def _carriers() -> list[CarrierSettings]:
    c = CarrierSettings
    return [
        c(
            carrier="DHL",
            service="standard",
            transit_days=2,
            base_cost=Decimal("4.90"),
            per_kg=Decimal("0.40"),
            regions=["DE", "AT"],
        ),
        c(
            carrier="DHL",
            service="express",
            transit_days=1,
            base_cost=Decimal("12.90"),
            per_kg=Decimal("0.80"),
            regions=["DE", "AT", "NL", "FR"],
        ),
        c(
            carrier="DPD",
            service="standard",
            transit_days=3,
            base_cost=Decimal("4.50"),
            per_kg=Decimal("0.50"),
            regions=["DE", "NL", "FR", "AT"],
        ),
        c(
            carrier="PostNL",
            service="standard",
            transit_days=2,
            base_cost=Decimal("4.20"),
            per_kg=Decimal("0.45"),
            regions=["NL"],
        ),
        c(
            carrier="GLS",
            service="standard",
            transit_days=3,
            base_cost=Decimal("5.90"),
            per_kg=Decimal("0.60"),
            max_value=Decimal(1000),
        ),
        c(
            carrier="UPS",
            service="express",
            transit_days=1,
            base_cost=Decimal("19.00"),
            per_kg=Decimal("1.20"),
            max_weight_grams=70_000,
            max_value=Decimal(20_000),
        ),
    ]


_DISTANCES: dict[str, dict[str, float]] = {
    "DE": {"WH-BER": 300, "WH-AMS": 600},
    "DE-1": {"WH-BER": 20, "WH-AMS": 650},
    "NL": {"WH-BER": 650, "WH-AMS": 40},
    "FR": {"WH-BER": 1050, "WH-AMS": 500},
    "GB": {"WH-BER": 1100, "WH-AMS": 550},
    "AT": {"WH-BER": 680, "WH-AMS": 1150},
    "*": {"WH-BER": 1500, "WH-AMS": 1500},
}


class FastMoverSettings(BaseModel):
    window_h: float = Field(24, gt=0, description="picks counted over the last 24 hours")
    min_picks: int = Field(20, ge=1, description="picks in the window that make a fast mover")
    slots: int = Field(24, ge=0, description="fast-mover bins in the zone nearest packing")


class RulesSettings(BaseModel):
    warehouses: dict[str, WarehouseSettings] = Field(
        default_factory=lambda: {
            "WH-BER": WarehouseSettings(),
            "WH-AMS": WarehouseSettings(),
        }
    )
    distances: dict[str, dict[str, float]] = Field(
        default_factory=lambda: dict(_DISTANCES),
        description="destination region or country (or '*') -> warehouse -> km",
    )
    carriers: list[CarrierSettings] = Field(default_factory=_carriers)
    promise_days: dict[str, int] = Field(
        default_factory=lambda: {"standard": 4, "express": 1},
        description="service level -> days from confirmation to the promised delivery",
    )
    weights: dict[str, int] = Field(default_factory=dict, description="SKU -> grams")
    default_weight_grams: int = Field(500, ge=1)
    merge: bool = Field(True, description="merge a customer's waiting orders to one address")
    split: bool = Field(False, description="ship an order from several warehouses if needed")
    wave_window_s: float = Field(300, gt=0, description="a wave is released 5 min after it opens")
    wave_size: int = Field(50, ge=1, description="... or when it holds this many orders")
    pack_tolerance: float = Field(0.05, ge=0, le=1, description="allowed weight deviation")
    fast_movers: FastMoverSettings = FastMoverSettings()


class Settings(ServiceSettings):
    model_config = service_config("FULFILMENT_")

    api: ApiSettings = ApiSettings(port=8003)
    rules: RulesSettings = RulesSettings()
    tick_s: float = Field(1.0, gt=0, description="how often wave windows and delays are checked")
    retry_unallocated_s: float = Field(60, gt=0, description="how often waiting orders retry")
    reslot_s: float = Field(300, gt=0, description="how often the velocity rule reslots")
    shards: int = Field(
        6,
        ge=1,
        description="lanes and capacity are kept per shard of the order ids (1, 2, 3 or 6: a "
        "divisor of the input topics' 6 partitions), so up to this many workers never write "
        "the same aggregate; change it only with no shipment waiting for a wave",
    )

    @field_validator("shards")
    @classmethod
    def _divides_partitions(cls, shards: int) -> int:
        if ORDERS.partitions % shards:
            raise ValueError(f"must divide the input topics' {ORDERS.partitions} partitions")
        return shards
