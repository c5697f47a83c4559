"""Files written whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def written(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only once the block ends without an error: a
    workbook cut short (a full disk, a refused write) never takes the place of a whole one.
    A folder that does not exist fails here, before any work is done."""
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        opened = part.open("wb")
    except OSError as error:  # named as the caller named it
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        with opened as handle:
            yield handle
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
