"""Path safety: what may be read, what may be written, and that no write lands on a read.

A file is read only once it is known to be a regular file (a FIFO would block
forever, /dev/zero would never end) and never past its size. A write replaces
only a regular file (through a symlink, never the link itself), and no path a
command writes may name a file it reads, in any spelling. Every problem is
one line naming the file; nothing here raises OSError or ValueError.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from pathlib import Path
from typing import Sequence, Union

from ..errors import ModelLoadError, OutputError

PathLike = Union[str, os.PathLike]

NAME_MAX = 255  # bytes in one path component, on every filesystem convrewrite is used on


def show(path: PathLike) -> str:
    """A path for a one-line message: as typed, or quoted when it holds control characters."""
    text = os.fsdecode(path) if isinstance(path, bytes) else os.fspath(path)
    return text if text.isprintable() else repr(text)


def _label(what: str, path: PathLike) -> str:
    return f"{what} {show(path)}" if what else show(path)


def oserror_text(exc: OSError) -> str:
    """A short reason for an OSError, the same words whatever the platform's strerror says."""
    reasons = {
        errno.ENOENT: "no such file",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENAMETOOLONG: "file name too long",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.ELOOP: "too many levels of symbolic links",
        errno.EISDIR: "is a folder",
    }
    return reasons.get(exc.errno) or (exc.strerror or str(exc)).lower()


def file_kind(mode: int) -> str:
    """What a non-regular file is, for 'is a FIFO, not a regular file'."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _name(path: PathLike, label: str, error: type) -> str:
    name = os.fsdecode(path) if isinstance(path, bytes) else os.fspath(path)
    if "\0" in name:
        raise error(f"{label}: file name contains a NUL byte")
    return name


def require_regular_file(path: PathLike, what: str) -> os.stat_result:
    """The file's stat, after refusing anything but a regular file; never opens it (a FIFO would block)."""
    label = _label(what, path)
    name = _name(path, label, ModelLoadError)
    try:
        st = os.stat(name)
    except OSError as exc:
        raise ModelLoadError(f"{label}: {oserror_text(exc)}") from None
    except ValueError as exc:  # e.g. a path the platform cannot encode
        raise ModelLoadError(f"{label}: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelLoadError(f"{label}: is {file_kind(st.st_mode)}, not a regular file")
    return st


def open_regular(path: PathLike, what: str) -> tuple[int, os.stat_result]:
    """An fd open for reading and its fstat, refusing anything but a regular file before and after opening.

    O_NONBLOCK keeps the open itself from blocking should the path be
    swapped for a FIFO between the stat and the open; the fstat then refuses it.
    """
    require_regular_file(path, what)
    label = _label(what, path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(os.fspath(path), flags | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ModelLoadError(f"{label}: {oserror_text(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ModelLoadError(f"{label}: is {file_kind(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_at(fd: int, length: int, offset: int) -> bytes:
    """`length` bytes at `offset` (fewer only at end of file), in as few pieces as the OS allows."""
    parts = []
    while length > 0:
        chunk = os.pread(fd, min(length, 2**30), offset)
        if not chunk:
            break
        parts.append(chunk)
        length -= len(chunk)
        offset += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_regular_bytes(path: PathLike, what: str, limit: int | None = None) -> bytes:
    """The whole content of a regular file, read no further than its size (and `limit`, if given)."""
    label = _label(what, path)
    fd, st = open_regular(path, what)
    try:
        if limit is not None and st.st_size > limit:
            raise ModelLoadError(f"{label}: {st.st_size} bytes, more than the {limit} allowed")
        try:
            return read_at(fd, st.st_size, 0)
        except OSError as exc:
            raise ModelLoadError(f"{label}: cannot read: {oserror_text(exc)}") from None
    finally:
        os.close(fd)


# ---------------------------------------------------------------- writing


def writable_target(path: PathLike, what: str) -> Path:
    """The real file a write to `path` replaces, after refusing what must not be written.

    Refused: a NUL byte or an over-long name; an existing target that is not
    a regular file (folder, device, FIFO, socket); a dangling symlink; a
    missing or read-only folder. A symlink to a regular file gives the file
    it points to, so the link is kept and the file replaced. Run before any
    work, so a bad target fails at once rather than after a long rewrite.
    """
    label = _label(what, path)
    name = _name(path, label, OutputError)
    if not name:
        raise OutputError(f"{label}: empty file name")
    try:
        lst = os.lstat(name)
    except FileNotFoundError:
        lst = None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise OutputError(f"{label}: folder {show(os.path.dirname(name))!r} does not exist") from None
        raise OutputError(f"{label}: {oserror_text(exc)}") from None
    real = Path(name)
    st = lst
    if lst is not None and stat.S_ISLNK(lst.st_mode):
        try:
            st = os.stat(name)
        except FileNotFoundError:
            raise OutputError(f"{label}: is a symbolic link to a missing file; refused") from None
        except OSError as exc:
            raise OutputError(f"{label}: {oserror_text(exc)}") from None
        real = Path(os.path.realpath(name))
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{label}: is a folder; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{label}: is {file_kind(st.st_mode)}, not a regular file; refusing to replace it")
    if len(os.fsencode(real.name)) > NAME_MAX:
        raise OutputError(f"{label}: file name too long ({len(os.fsencode(real.name))} bytes, at most {NAME_MAX})")
    folder = real.parent if str(real.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{label}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{label}: folder {str(folder)!r} is not writable")
    return real


# ---------------------------------------------------------------- distinct paths


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file, in any spelling (relative, `..`, symlink, hard link, folded case)."""
    return _identity(a) == _identity(b)


def _identity(path: PathLike) -> tuple:
    """What a path names: the file (device, inode) when it exists, else (its folder, its name)."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
        return ("file", st.st_dev, st.st_ino)
    except (OSError, ValueError):
        pass
    real = os.path.realpath(name)
    folder, base = os.path.split(real)
    try:
        st = os.stat(folder)
    except (OSError, ValueError):
        return ("path", real)
    return ("name", st.st_dev, st.st_ino, base.casefold() if _folds_case(folder) else base)


@functools.lru_cache(maxsize=64)
def _folds_case(folder: str) -> bool:
    """Whether the filesystem holding `folder` finds names regardless of case (macOS, Windows, some mounts)."""
    parent, base = os.path.split(folder.rstrip(os.sep) or os.sep)
    swapped = base.swapcase()
    if not base or swapped == base:
        return False
    try:
        return os.path.samefile(folder, os.path.join(parent, swapped))
    except (OSError, ValueError):
        return False


def _inside(path: str, folder: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, top]) == top


def check_distinct(written: Sequence[tuple[str, PathLike]], read: Sequence[tuple[str, PathLike]]) -> None:
    """Refuse, with one line naming both, any written path that names a read file or another written path.

    Pairs are (label, path); a label says what the path is for ("-o",
    "--report", "the input model"). `-` (standard output) is never a file.
    A read path that is a folder (a folder of .pb inputs) holds every path
    inside it.
    """
    out = [(label, p) for label, p in written if p is not None and os.fspath(p) != "-"]
    for label, p in out:
        _name(p, _label(label, p), OutputError)
    ids = [_identity(p) for _, p in out]
    for i, (label, p) in enumerate(out):
        for other_label, other in read:
            if other is None or os.fspath(other) == "-":
                continue
            if ids[i] == _identity(other):
                raise OutputError(f"{_label(label, p)}: is {_label(other_label, other)}; refusing to overwrite it")
            if os.path.isdir(other) and _inside(p, other):
                raise OutputError(f"{_label(label, p)}: is inside {_label(other_label, other)}; "
                                  "give a file name outside it")
        for j in range(i):
            if ids[i] == ids[j]:
                other_label, other = out[j]
                raise OutputError(f"{_label(label, p)}: is also {_label(other_label, other)}; "
                                  "give each a different file name")
