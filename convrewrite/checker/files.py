"""Regular-file reads for the checker's tensor files (a FIFO or device is never opened)."""

from __future__ import annotations

import os
import stat as st
from pathlib import Path

from .errors import CheckInputError

_KINDS = ((st.S_ISDIR, "is a folder"), (st.S_ISFIFO, "is a FIFO"), (st.S_ISCHR, "is a character device"),
          (st.S_ISBLK, "is a block device"), (st.S_ISSOCK, "is a socket"))


def require_regular_file(path: str | os.PathLike, what: str) -> os.stat_result:
    """The file's stat, or one line saying why it is not a readable regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CheckInputError(f"{path}: no such file ({what})") from None
    except OSError as exc:
        raise CheckInputError(f"{path}: cannot read ({what}): {exc.strerror or exc}") from None
    except ValueError:
        raise CheckInputError(f"{path!r}: not a valid path ({what})") from None
    for test, text in _KINDS:
        if test(info.st_mode):
            raise CheckInputError(f"{path}: {text}, not a regular file ({what})")
    return info


def read_regular_bytes(path: str | os.PathLike, what: str, limit: int | None = None) -> bytes:
    """At most the file's size, from a regular file only."""
    info = require_regular_file(path, what)
    if limit is not None and info.st_size > limit:
        raise CheckInputError(f"{path}: {info.st_size} bytes, over the limit of {limit} ({what})")
    try:
        with open(Path(path), "rb") as fh:
            if not st.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise CheckInputError(f"{path}: not a regular file ({what})")
            return fh.read(info.st_size)
    except OSError as exc:
        raise CheckInputError(f"{path}: cannot read ({what}): {exc.strerror or exc}") from None
