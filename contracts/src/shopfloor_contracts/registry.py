"""Which event types live on which topic, at which schema version."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from shopfloor_contracts import (
    analytics,
    fulfilment,
    inventory,
    orders,
    orders_private,
    risk,
    service_desk,
)
from shopfloor_contracts.envelope import Envelope


@dataclass(frozen=True)
class EventSpec:
    topic: str
    model: type[BaseModel]
    version: int = 1

    @property
    def event_type(self) -> str:
        return self.model.__name__

    def message_model(self) -> type[BaseModel]:
        """The envelope with this event's payload: what a message on the wire is."""
        return _message_model(self.model)


@functools.cache
def _message_model(model: type[BaseModel]) -> type[BaseModel]:
    # Held here for good: pydantic keeps parametrized generics only weakly, so without a
    # strong reference `Envelope[X]` is built again (a new class) for every message.
    return Envelope[model]  # type: ignore[valid-type]


_SPECS = [
    # v2: v1 carried the recipient's name and street on a topic analysts read
    EventSpec("orders.v1", orders.OrderPlaced, version=2),
    *(
        EventSpec("orders.v1", m)
        for m in (
            orders.PaymentReminderSent,
            orders.OrderPaid,
            orders.PaymentRejected,
            orders.OrderConfirmed,
            orders.OrderHeld,
            orders.OrderReleased,
            orders.OrderCancelled,
            orders.RefundIssued,
            orders.RefundRefused,
            orders.OrderShipped,
            orders.OrderDelivered,
            orders.OrderCompleted,
        )
    ),
    EventSpec("orders.private.v1", orders_private.OrderRecipientRecorded),
    *(
        EventSpec("inventory.v1", m)
        for m in (
            inventory.StockReserved,
            inventory.ReservationRejected,
            inventory.ReservationReleased,
            inventory.StockCommitted,
            inventory.StockReceived,
            inventory.StockAdjusted,
            inventory.StockReturned,
            inventory.StockTransferred,
            inventory.TransferReceived,
            inventory.LowStockDetected,
            inventory.ReorderSuggested,
            inventory.ReservationMoved,
            inventory.ReservationMoveRefused,
        )
    ),
    *(
        EventSpec("fulfilment.v1", m)
        for m in (
            fulfilment.ShipmentAllocated,
            fulfilment.ShipmentUnallocated,
            fulfilment.WaveReleased,
            fulfilment.ItemPicked,
            fulfilment.ScanRefused,
            fulfilment.ShipmentPulled,
            fulfilment.ShipmentFlagged,
            fulfilment.ShipmentPacked,
            fulfilment.ShipmentDispatched,
            fulfilment.TrackingUpdated,
            fulfilment.ShipmentDelayed,
            fulfilment.DeliveryFailed,
        )
    ),
    *(
        EventSpec("risk.v1", m)
        for m in (
            risk.OrderAssessed,
            risk.OrderEscalated,
            risk.HoldReleased,
            risk.OrderCancellationRequested,
            risk.ExceptionClosed,
            risk.CustomerBlacklisted,
            risk.BlacklistEntryRemoved,
        )
    ),
    EventSpec("risk.velocity.v1", risk.VelocityObserved),
    *(
        EventSpec("service-desk.v1", m)
        for m in (
            service_desk.TicketOpened,
            service_desk.TicketRouted,
            service_desk.TicketAnswered,
            service_desk.TicketEscalated,
            service_desk.TicketResolved,
            service_desk.TicketRated,
            service_desk.ReturnAuthorized,
            service_desk.ReturnRefused,
            service_desk.ReturnReceived,
            service_desk.ReplacementRequested,
        )
    ),
    EventSpec("analytics.v1", analytics.AlertRaised),
    EventSpec("analytics.v1", analytics.AlertCleared),
]

EVENTS: dict[str, EventSpec] = {s.event_type: s for s in _SPECS}


class UnknownEvent(ValueError):
    pass


def model_for(event_type: str) -> type[BaseModel]:
    try:
        return EVENTS[event_type].model
    except KeyError:
        raise UnknownEvent(f"unknown event type {event_type!r}") from None


def read_payload(event_type: str, payload: dict[str, Any]) -> BaseModel:
    """Parse a payload tolerantly: fields added by a newer producer are ignored."""
    model = model_for(event_type)
    known = {k: v for k, v in payload.items() if k in model.model_fields}
    return model.model_validate(known)
