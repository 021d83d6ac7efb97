"""Shared fixtures (embedded broker, fresh PostgreSQL databases) for every test tree."""

pytest_plugins = ["shopfloor_runtime.testing"]
