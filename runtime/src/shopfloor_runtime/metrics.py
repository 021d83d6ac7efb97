"""Prometheus metrics the shared machinery exports; labels stay low-cardinality."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "shopfloor_events_published_total", "Events the outbox relay published", ["service", "topic"]
)
EVENTS_CONSUMED = Counter(
    "shopfloor_events_consumed_total",
    "Messages a tracked consumer handled, by outcome (applied, duplicate, ignored, dead_letter)",
    ["service", "topic", "outcome"],
)
DEAD_LETTERS = Counter(
    "shopfloor_dead_letters_total", "Messages sent to a dead-letter topic", ["service", "topic"]
)
CONSUMER_LAG = Gauge(
    "shopfloor_consumer_lag_messages", "High-water mark minus next offset", ["service", "topic"]
)
PROCESSING_SECONDS = Histogram(
    "shopfloor_batch_processing_seconds",
    "Time to apply one batch of consumed messages in one transaction",
    ["service", "topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENT_AGE_SECONDS = Histogram(
    "shopfloor_event_age_seconds",
    "From an event's occurred_at to its processing by a consumer",
    ["service", "topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RELAY_POSITION = Gauge(
    "shopfloor_relay_position", "Last store position the relay published", ["service"]
)
RELAY_BACKLOG = Gauge(
    "shopfloor_relay_backlog_events", "Events stored but not yet published", ["service"]
)
REPUBLISHES = Counter(
    "shopfloor_relay_republishes_total",
    "Times the relay found a broker that lost its data and re-published from position 1",
    ["service"],
)
GAPS = Counter(
    "shopfloor_consumer_gaps_total",
    "Times a consumer met a message whose predecessor it had not seen, and rewound",
    ["service", "topic"],
)
