"""Plumbing every shopfloor service shares, written once: settings, event store wiring,
outbox relay, tracked consumer with dead letters, embedded broker launcher, metrics,
health endpoints and the `shopfloor` CLI. No business rules live here."""
