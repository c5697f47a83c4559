"""The HTTP API (issue 6): :func:`backflush.api.app.create_app` serves a book with FastAPI.

Nothing is imported with the package: the CLI imports :mod:`backflush.api.tokens` for its
``token`` commands, and FastAPI is loaded only by what serves. ``from backflush.api import
create_app`` still works, importing it then.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from backflush.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
