"""The API app for uvicorn's ``--factory`` (used by ``bench_api.py --workers N``, since
``backflush serve`` runs one process): the book named by ``BACKFLUSH_DB``."""

from __future__ import annotations

import os

from fastapi import FastAPI

from backflush.api.app import create_app


def make() -> FastAPI:
    return create_app(os.environ["BACKFLUSH_DB"])
