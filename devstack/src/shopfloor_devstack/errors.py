"""The one error the dev stack shows its user."""

from __future__ import annotations


class StackError(Exception):
    """Something the user can fix; the message is one readable line."""
