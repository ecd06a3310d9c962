"""Names from the server that become files: checked before anything is written.

A KSeF number or a UPO page's reference number names a file in a folder the caller chose
(``save_invoice_upos``, ``save_session_upo``, ``ksef upo get``, exports and ``invoices.sync``).
The server chooses those names, so each one must have its identifier's format, and the path it
makes must stay inside the folder; anything else raises ``UnsafePathError`` and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ksef_client.errors import UnsafePathError
from ksef_client.identifiers import validate_ksef_number, validate_reference_number

# What a name must be, by kind: the identifier formats of ``identifiers``.
_FORMATS: dict[str, Callable[[str, str], str]] = {
    "KSeF number": validate_ksef_number,
    "reference number": validate_reference_number,
}


def checked_name(name: object, kind: str) -> str:
    """``name`` when it has the format of ``kind`` ("KSeF number" or "reference number")."""
    try:
        return _FORMATS[kind](name, kind)  # type: ignore[arg-type]
    except ValueError as error:
        raise UnsafePathError(f"refused to use {name!r} from the server as a file name: {error}") from None


def file_in(directory: Path, name: str, suffix: str = ".xml") -> Path:
    """``directory/name+suffix``, refused when ``name`` is not one plain file name or the path
    resolves (symbolic links followed) outside ``directory``."""
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0:"):
        raise UnsafePathError(f"refused to use {name!r} as a file name: not one plain name")
    folder = Path(directory).resolve()
    target = (folder / f"{name}{suffix}").resolve()
    if target.parent != folder:
        raise UnsafePathError(f"refused to write {name!r}: {target} is outside {folder}")
    return Path(directory) / f"{name}{suffix}"


def checked_files(directory: Path, names: Iterable[object], kind: str, suffix: str = ".xml") -> list[Path]:
    """The files of every name, all checked before the first is written."""
    return [file_in(directory, checked_name(name, kind), suffix) for name in names]
