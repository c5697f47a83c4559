"""The HTTP API (issue 6): :func:`backflush.api.app.create_app` serves a book with FastAPI.

Nothing is imported here: the CLI imports :mod:`backflush.api.tokens` for its ``token``
commands, and FastAPI is loaded only by what serves.
"""
