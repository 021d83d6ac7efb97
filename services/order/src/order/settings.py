"""Order service settings: environment variables prefixed ORDER_, nested with `__`."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field, SecretStr
from shopfloor_runtime.settings import ApiSettings, ServiceSettings, service_config


class CouponSettings(BaseModel):
    percent_off: int = Field(0, ge=0, le=100)
    amount_off: Decimal = Field(Decimal(0), ge=0)
    min_subtotal: Decimal = Field(Decimal(0), ge=0)
    channels: list[str] = Field(default_factory=list, description="empty: every channel")


class RulesSettings(BaseModel):
    channels: list[str] = ["shop", "marketplace-a", "marketplace-b"]
    payment_methods: list[str] = ["card", "paypal", "bank_transfer"]
    coupons: dict[str, CouponSettings] = {
        "WELCOME10": CouponSettings(percent_off=10, min_subtotal=Decimal(20)),
        "SHOP5": CouponSettings(amount_off=Decimal(5), channels=["shop"]),
    }
    required_checks: list[str] = Field(
        default_factory=lambda: ["inventory", "risk"],
        description="checks an order needs before it is confirmed: inventory's reservation "
        "and risk's assessment (an order risk holds waits for its release)",
    )
    payment_reminder_after_s: float = Field(900, gt=0, description="remind after 15 min")
    payment_timeout_s: float = Field(1800, gt=0, description="auto-cancel after 30 min")
    duplicate_window_s: float = Field(60, ge=0, description="keyless duplicates folded")
    return_window_s: float = Field(
        604800, ge=0, description="a delivered order completes after 7 days (returns end)"
    )


class PrivacySettings(BaseModel):
    address_key: SecretStr | None = Field(
        None,
        description="HMAC key of the address fingerprints on orders.v1 (32+ random bytes, "
        "from a secret manager); unset: a key generated once and kept in the store",
    )


class Settings(ServiceSettings):
    model_config = service_config("ORDER_")

    api: ApiSettings = ApiSettings(port=8001)
    rules: RulesSettings = RulesSettings()
    privacy: PrivacySettings = PrivacySettings()
    deadline_tick_s: float = Field(1.0, gt=0, description="how often deadlines are checked")
