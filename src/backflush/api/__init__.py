"""The HTTP API (issue 6): :func:`create_app` serves a book with FastAPI."""

from __future__ import annotations

from backflush.api.app import create_app

__all__ = ["create_app"]
