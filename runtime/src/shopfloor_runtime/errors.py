"""The two kinds of domain error every service has, so each domain says only which of
its rules was broken. Pure: raised by aggregates; the HTTP shape is the edge's business
(`shopfloor_runtime.web`: an error table maps them to statuses)."""

from __future__ import annotations


class DomainError(Exception):
    """A command the domain refuses."""


class RuleBroken(DomainError):
    """Input that is well-formed but breaks a business rule; names the input field it is
    about (dotted for nested ones, e.g. `shipping_address.country`) and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason
