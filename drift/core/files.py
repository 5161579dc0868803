"""Files that appear whole or not at all, readable by whoever the umask allows, and no litter.

Every file the harness writes for later runs to trust (embedding shards, indexes, result files,
fitted adapters, serving artifacts) goes through `atomic_write`: it is written to a temporary
file beside its final name, flushed to disk, given the mode a plain `open()` would have given it
(mkstemp's 0600 would make a cache shared by a team unreadable to the others), and renamed into
place. A reader never sees a partial file, and a killed writer leaves only its temporary.

Temporaries are named `.<final name>.<host>-<pid>-<random>.tmp` (folders: `.partial`), so the
next run can tell a dead writer's leftovers from a live one's: `clean_stale` removes those of
processes of this host that no longer run, and never touches a live process's files or those of
another host (whose processes it cannot see).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

HOST = socket.gethostname()
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
_TEMP = re.compile(r"^\..+\.(?P<host>[^.]+)-(?P<pid>\d+)-[0-9a-f]{8}\.(?:tmp|partial)$")


def temporary_name(final: Path, kind: str = "tmp") -> Path:
    """A name beside `final` that says which process on which host owns it."""
    return final.with_name(f".{final.name}.{writer_tag()}-{secrets.token_hex(4)}.{kind}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Create or replace `path` with what `write(temporary path)` writes, all or nothing."""
    tmp = write_temporary(path, write)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_savez(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """`np.savez` through `atomic_write` (given the temporary's name, np.savez would append .npz
    to it; it gets the open file instead)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    return atomic_write(path, write)


def write_temporary(final: Path, write: Callable[[Path], None]) -> Path:
    """`write` a temporary file beside `final`, flushed to disk with the umask's mode; the caller
    renames (or links) it into place. Nothing is left behind if `write` fails."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fsync_folder(folder: Path) -> None:
    """Make a rename or link inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temporary_folder(final: Path) -> Iterator[Path]:
    """A folder beside `final` to fill and rename into place; removed if still there at exit."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final, "partial")
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def writer_tag() -> str:
    """`<host>-<pid>` of this process: what temporaries (and other names a writer owns until it
    commits, such as embedding-cache shards) carry so that `writer_gone` can judge them later."""
    return f"{HOST.replace('.', '_')}-{os.getpid()}"


def writer_gone(host: str, pid: int) -> bool:
    """Whether the writer `<host>-<pid>` is known to be gone: a process of this host that no
    longer runs (another host's processes cannot be seen, so they never count as gone)."""
    return host == HOST.replace(".", "_") and not _alive(pid)


def clean_stale(folder: Path) -> list[Path]:
    """Remove the temporaries in `folder` left by processes of this host that are gone."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = _TEMP.match(entry.name)
            if not match or not writer_gone(match["host"], int(match["pid"])):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
