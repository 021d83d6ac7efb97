"""Event contracts shared by every shopfloor service: the envelope, the topic registry and
one module of typed event models per producing service. Nothing here has behaviour."""

from shopfloor_contracts.envelope import Envelope, InboundEnvelope, Money
from shopfloor_contracts.registry import EVENTS, EventSpec, model_for
from shopfloor_contracts.topics import TOPICS, Topic, dlq_topic

__all__ = [
    "EVENTS",
    "TOPICS",
    "Envelope",
    "EventSpec",
    "InboundEnvelope",
    "Money",
    "Topic",
    "dlq_topic",
    "model_for",
]
