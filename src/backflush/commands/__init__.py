"""Command groups of the command line beyond the core verbs of :mod:`backflush.cli`.

Each module here defines its commands with the helpers of :mod:`backflush.cli` (options,
``guarded``, ``fail``, consoles), and ``backflush.cli`` registers them at its end. Importing
``backflush.cli`` first, here, keeps that working whichever module is imported first: a
command module importing the helpers always finds them defined.
"""

import backflush.cli  # noqa: F401
