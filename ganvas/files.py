"""The one way ganvas writes a file: to a temporary name beside it, then renamed into place.

Checkpoints, run state, options, pages, images and exported models all go through `atomic_write_many`,
so a full disk, a crash or Ctrl-C never leaves a half-written file, and every file gets the usual
permissions (0o666 less the umask), as `open()` would give it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ganvas.errors import WriteError


def atomic_write_many(writes: list[tuple[Path, Callable[[Path], None]]], sync: bool = True) -> None:
    """Call write(tmp) for each (path, write) on a temporary file beside path, then rename them all into place.

    A full disk, a crash or Ctrl-C while writing leaves the previous files untouched, and the files of
    one batch (a checkpoint's networks and run state) are renamed together. `sync` flushes each file to
    the disk before the rename; images skip it (there are thousands, and a rerun writes them again).
    """
    temps: list[Path] = []
    try:
        for path, write in writes:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append(Path(name))
            try:
                write(temps[-1])
                if sync:
                    with open(temps[-1], "rb+") as fh:
                        os.fsync(fh.fileno())
            except OSError as err:
                raise WriteError(
                    f"could not write {path} ({err.strerror or err}); free some disk space or write to "
                    f"another folder; the previous file there is intact"
                ) from err
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    mode = 0o666 & ~_umask()  # mkstemp makes private files; give them the usual permissions
    for tmp, (path, _) in zip(temps, writes):
        os.chmod(tmp, mode)
        os.replace(tmp, path)


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None], sync: bool = True) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place."""
    atomic_write_many([(path, write)], sync)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file (UTF-8) atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
