"""Moving an export package's checked files into the caller's folder (``invoices.export`` and
``invoices.sync``): every target is checked before the first file is moved, and a move that
still fails says which files were moved in and which were not.

A package is unpacked into a temporary folder inside the target folder, so each move is a rename
on one file system. A rename cannot be undone safely (the file it replaced is gone), so the
targets are checked first: nothing but a regular file this user may replace may stand at a
file's name. What can still fail after that (a folder put in the way meanwhile, a disk error) is
an ``ExportError`` naming the files moved in and the files not.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from ksef_client.errors import ExportError


def check_targets(ref: str, directory: Path, targets: list[Path]) -> None:
    """``ExportError`` (nothing moved yet) when a target is taken by a folder, a link or anything
    else but a regular file, or by a file the rename could not replace (``_replaceable``)."""
    folder = os.stat(directory)
    blocked = []
    for target in targets:
        try:
            found = os.lstat(target)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(found.st_mode):
            blocked.append(f"{target.name} ({_kind(found.st_mode)})")
        elif not _replaceable(target, found, folder):
            blocked.append(f"{target.name} (a file this user may not replace)")
    if blocked:
        raise ExportError(
            f"export {ref}: {len(blocked)} invoice file(s) cannot be saved in {directory}, their names are "
            f"taken: {_some(blocked)}; nothing was moved in"
        )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def _replaceable(target: Path, found: os.stat_result, folder: os.stat_result) -> bool:
    """Whether a rename may replace the regular file ``found`` at ``target``: on Windows not when
    it is read-only; on POSIX, in a folder with the sticky bit (``/tmp``), only when this user
    owns the file or the folder (or is root). The folder itself is writable: the package was
    unpacked into it."""
    if os.name == "nt":
        return os.access(target, os.W_OK)
    if not folder.st_mode & stat.S_ISVTX:
        return True
    return os.geteuid() in (0, found.st_uid, folder.st_uid)


def move_in(
    ref: str,
    moves: list[tuple[Path, Path]],
    moved: list[Path],
    before: Callable[[Path], None] | None = None,
) -> None:
    """Move each ``(source, target)`` in turn, appending each target to ``moved`` once it is in
    place (``before(source)`` first: ``sync`` flushes the file). An ``OSError`` is raised as an
    ``ExportError`` that names the files moved in and the files not (the caller's ``moved`` holds
    the first; the temporary folder's clean-up removes the others)."""
    for source, target in moves:
        try:
            if before is not None:
                before(source)
            os.replace(source, target)
        except OSError as error:
            rest = [t.name for _, t in moves[len(moved) :]]
            done = [t.name for t in moved]
            raise ExportError(
                f"export {ref}: {target.name} could not be moved into {target.parent} "
                f"({type(error).__name__}: {error.strerror or error}); {len(done)} of {len(moves)} invoice file(s) "
                f"were moved in before it ({_some(done)}), {len(rest)} were not ({_some(rest)})"
            ) from error
        moved.append(target)


def _some(names: list[str], count: int = 10) -> str:
    if not names:
        return "none"
    return ", ".join(names[:count]) + (f" and {len(names) - count} more" if len(names) > count else "")
