"""Plumbing every shopfloor service shares, written once: settings, event store wiring,
outbox relay, tracked consumer with dead letters, metrics, health endpoints, the service
command line and `trace`. No business rules live here, and nothing only development needs
(the embedded broker, the dev stack and its simulator live in shopfloor_devstack)."""
