"""What the figures are computed with: channel commissions, payment fees, shipping costs
per carrier, the ABC thresholds and the customer segments. A TOML file named by
ANALYTICS_RULES_FILE overrides any of the defaults (README: analytics)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaymentFee(_Rules):
    percent: Decimal = Field(Decimal("1.4"), ge=0, le=100, description="of the order total")
    fixed: Decimal = Field(Decimal("0.25"), ge=0, description="per paid order")


class AbcRules(_Rules):
    a: Decimal = Field(
        Decimal(80), gt=0, lt=100, description="A: the top SKUs up to this % of revenue"
    )
    b: Decimal = Field(Decimal(95), gt=0, lt=100, description="B: then up to this %; C: the rest")

    @model_validator(mode="after")
    def _ordered(self) -> AbcRules:
        if self.b <= self.a:
            raise ValueError("b must be above a")
        return self


class SegmentRules(_Rules):
    dormant_days: int = Field(90, gt=0, description="no order for this many days: dormant")
    vip_spend: Decimal = Field(Decimal(1000), gt=0, description="VIP: spend over the window")
    vip_window_days: int = Field(365, gt=0, description="the spend window for VIP")


class AlertRules(_Rules):
    check_s: float = Field(5.0, gt=0, description="how often the alerts are evaluated")
    daily_capacity: int = Field(1000, gt=0, description="orders the warehouses ship a day")
    backlog_percent: Decimal = Field(
        Decimal(20), gt=0, description="yellow: unshipped confirmed orders above this % of it"
    )
    on_time_percent: Decimal = Field(
        Decimal(90), gt=0, le=100, description="orange: on-time shipping below this % ..."
    )
    on_time_days: int = Field(3, ge=1, description="... on this many days in a row")
    complaints_rise_percent: Decimal = Field(
        Decimal(50), gt=0, description="red: complaints up this % on the previous period"
    )
    complaints_period_days: int = Field(7, ge=1, description="the period compared")
    complaints_min: int = Field(
        5, ge=1, description="fewer complaints than this in the previous period: no rise judged"
    )
    complaint_types: tuple[str, ...] = ("complaint", "delivery", "product", "return")
    complaints_include_system_tickets: bool = Field(
        False,
        description="count the tickets the desk opens itself from events (a delayed "
        "shipment, a failed delivery) as complaints; by default only customers' contacts",
    )
    variance_cv: Decimal = Field(
        Decimal("1.5"),
        gt=0,
        description="needs action: paid->shipped times spread above this coefficient of "
        "variation (standard deviation / mean) ...",
    )
    variance_days: int = Field(3, ge=1, description="... on this many days in a row")


class AnalyticsRules(_Rules):
    commission_percent: dict[str, Decimal] = Field(
        default_factory=lambda: {"shop": Decimal(0), "marketplace": Decimal(12)},
        description="platform commission per channel, % of the order total (unlisted: 0)",
    )
    payment_fees: dict[str, PaymentFee] = Field(
        default_factory=lambda: {"card": PaymentFee()},
        description="per payment method (unlisted: the 'card' fee)",
    )
    shipping_cost: dict[str, Decimal] = Field(
        default_factory=lambda: {"DHL": Decimal("4.90"), "DPD": Decimal("4.50")},
        description="cost per shipment by carrier (unlisted: default_shipping_cost)",
    )
    default_shipping_cost: Decimal = Decimal("5.00")
    abc: AbcRules = AbcRules()
    segments: SegmentRules = SegmentRules()
    alerts: AlertRules = AlertRules()
