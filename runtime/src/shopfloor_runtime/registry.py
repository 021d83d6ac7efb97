"""Which services exist. Each service's package declares itself in its pyproject.toml
under the entry-point group `shopfloor.services` (`order = "order.bootstrap:SPEC"`), so
the dev stack, the fuzz test and the operator tools find every service without naming
one: a new service is found by being installed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic_settings import BaseSettings

GROUP = "shopfloor.services"


class SettingsPort:
    """The variable prefix and API port of a process, read from its settings class (the
    one place a port is written): for registry services and the dev stack's workers."""

    settings: type[BaseSettings]

    @property
    def env_prefix(self) -> str:
        return str(self.settings.model_config.get("env_prefix", ""))

    @property
    def default_port(self) -> int:
        """The API port its settings default to."""
        return int(self.settings.model_fields["api"].default.port)

    @property
    def port_variable(self) -> str:
        return f"{self.env_prefix}API__PORT"


@dataclass(frozen=True)
class ServiceSpec(SettingsPort):
    """What the tools need to know of one service."""

    name: str  # as on topics and dead letters: "order", "service-desk"
    package: str  # its Python package: `python -m <package>` runs it
    settings: type[BaseSettings]
    build: Callable[..., Any]  # build(settings=None, clock=None) -> the assembled service
    description: str

    @classmethod
    def of(cls, service: Any) -> ServiceSpec:
        """The spec of a `shopfloor_runtime.service.Service` subclass."""
        return cls(
            name=service.name,
            package=service.__module__.split(".")[0],
            settings=service.settings_type,
            build=service,
            description=service.description,
        )


def services() -> list[ServiceSpec]:
    """Every installed service, in port order."""
    found = [point.load() for point in entry_points(group=GROUP)]
    for spec in found:
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {GROUP} must name a ServiceSpec, got {spec!r}")
    return sorted(found, key=lambda spec: spec.default_port)


def service(name: str) -> ServiceSpec:
    for spec in services():
        if spec.name == name:
            return spec
    raise LookupError(f"no service named {name!r} is installed")
