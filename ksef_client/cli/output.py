"""What the CLI prints: tables and progress for people, JSON for scripts, one-line errors, exit codes.

Exit codes (stable, for scripts):

==== ===========================================================================
0    success
1    KSeF answered with an error, or another SDK error
2    usage error (bad option or argument, bad input file) - nothing was sent
3    not logged in, or the login failed / was refused (401, 415, 450, ...)
4    no answer from KSeF (connection, timeout) or gave up polling
5    some invoices were rejected (the others were accepted: see the output)
6    none rejected, but some invoices were in KSeF already (440 duplicates: see the output)
130  interrupted (Ctrl-C)
==== ===========================================================================

An error is one line on stderr, followed by its notes (``note: ...``, one a line): what the SDK
and the CLI know of what the failure left behind (a session still open, files already sent or
saved) and what to do next.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
import sys
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OK, KSEF_ERROR, USAGE, AUTH, UNREACHABLE, REJECTED, ALREADY_IN_KSEF, INTERRUPTED = 0, 1, 2, 3, 4, 5, 6, 130


class CLIError(Exception):
    """A failure the CLI explains itself (message, exit code). Raised ``from`` an SDK error, that
    error's notes are printed after its line too, unless ``cause_notes`` is false (the message says
    the same in the CLI's words)."""

    def __init__(self, message: str, code: int = USAGE, *, cause_notes: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.cause_notes = cause_notes


def notes_of(error: BaseException) -> list[str]:
    """What is printed after an error's line: the notes of the error a ``CLIError`` was raised
    from (the SDK's), then its own (the CLI's), each once."""
    cause = error.__cause__
    notes: list[str] = []
    if isinstance(error, CLIError) and error.cause_notes and cause is not None:
        notes += getattr(cause, "__notes__", [])
    notes += getattr(error, "__notes__", [])
    return [str(note) for note in dict.fromkeys(notes)]


def exit_code(error: BaseException) -> int:
    """The documented exit code for an exception."""
    # The SDK's modules load with the first command that uses them (not for --help).
    from ksef_client.errors import (  # noqa: PLC0415
        APIConnectionError,
        AuthenticationError,
        AuthenticationFailedError,
        PollTimeoutError,
    )

    if isinstance(error, CLIError):
        return error.code
    if isinstance(error, AuthenticationError | AuthenticationFailedError):
        return AUTH
    if isinstance(error, APIConnectionError | PollTimeoutError):
        return UNREACHABLE
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, ValueError | FileNotFoundError | IsADirectoryError | ImportError):
        return USAGE  # an ImportError: an extra not installed (``ksef mock`` without ksef-sdk[mock])
    return KSEF_ERROR


def error_line(error: BaseException) -> str:
    """One readable line: what failed, KSeF's exception codes and details first (``one_line``)."""
    from ksef_client.errors import one_line  # noqa: PLC0415

    return f"error: {one_line(error)}"


# What is never printed of a value for people: C0 and C1 control characters and DEL (a terminal
# acts on ESC sequences: colours, cursor moves, the window title, on some even the clipboard), and
# the Unicode bidi embeddings, overrides and isolates (they show the text in another order than it
# is: an invoice number would read as another). Tab, CR and LF become a space, so a value stays on
# its line and its words apart.
_UNPRINTABLE: dict[int, str | None] = dict.fromkeys(
    [*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
_UNPRINTABLE.update(dict.fromkeys(map(ord, "\t\r\n"), " "))


def printable(text: str) -> str:
    """``text`` fit for a terminal: control characters left out (see ``_UNPRINTABLE``). Every value
    from KSeF, a file or any other third party goes through it before it is printed for people."""
    return text.translate(_UNPRINTABLE)


def _cell(value: Any) -> str:
    shown = plain(value)
    return "" if shown is None else printable(str(shown))


def plain(value: Any) -> Any:
    """JSON-ready form of SDK objects (generated models, dataclasses, dates, paths, enums)."""
    from ksef_client._generated.types import Unset  # noqa: PLC0415

    result = value
    if isinstance(value, Unset):
        result = None
    elif hasattr(value, "to_dict"):  # KSeF's camelCase, in the CLI's one style: snake_case
        result = plain(_snake_keys(value.to_dict()))
    elif isinstance(value, dt.datetime | dt.date):
        result = value.isoformat()
    elif isinstance(value, Path):
        result = str(value)
    elif isinstance(value, enum.Enum):
        result = value.value
    elif isinstance(value, dict):
        result = {str(k): plain(v) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        result = [plain(v) for v in value]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        result = plain(dataclasses.asdict(value))
    return result


_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake_keys(value: Any) -> Any:
    """``{"ksefNumber": ...}`` -> ``{"ksef_number": ...}``, all the way down."""
    if isinstance(value, dict):
        return {_CAMEL_HUMP.sub(r"_\1", str(k)).lower(): _snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


class Output:
    """Prints for people (rich tables, progress on stderr) or for scripts (``--json`` on stdout)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(
        self,
        data: Any,
        *,
        table: Sequence[str] | None = None,
        rows: Iterable[Sequence[Any]] = (),
        message: str | None = None,
    ) -> None:
        """The command's result: ``data`` as JSON, or ``message`` and a table with ``table`` columns."""
        if self.as_json:
            sys.stdout.write(json.dumps(plain(data), ensure_ascii=False, indent=2) + "\n")
            return
        from rich.console import Console  # noqa: PLC0415 - only when printing for people
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        # Piped output is not cut to 80 columns: whoever reads it (grep, a log) wants whole values.
        console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 400)
        # Every message and cell is plain Text: the values in it are KSeF's and the seller's (an
        # invoice number is any text up to 256 characters), never rich markup: "[/x]" would end
        # the command with a MarkupError, "[on red]FV/2[/]" show as FV/2, ":x:" as an emoji.
        if message:
            console.print(Text(printable(message)))
        if table:
            grid = Table(*table, show_edge=False, header_style="bold")
            for row in rows:
                grid.add_row(*(Text(_cell(v)) for v in row))
            console.print(grid)

    def error(self, error: BaseException, line: str | None = None) -> None:
        """The one-line error (``line``, by default ``error_line``) on stderr (also in JSON mode:
        stdout stays parseable), then its notes (``notes_of``), a line each; it quotes KSeF's
        descriptions, so it is ``printable`` too."""
        sys.stderr.write(printable(error_line(error) if line is None else line) + "\n")
        for note in notes_of(error):
            self.note(note)

    def note(self, text: str, kind: str = "note") -> None:
        """A line on stderr for people and scripts alike: ``note: ...`` (or ``warning: ...``)."""
        sys.stderr.write(f"{kind}: {printable(text)}\n")

    @contextmanager
    def progress(self, description: str, total: int | None) -> Any:
        """A progress bar on stderr (nothing in JSON mode); yields ``advance(n=1, total=None)``."""
        if self.as_json or not sys.stderr.isatty():
            yield lambda n=1, total=None: None
            return
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import Progress  # noqa: PLC0415

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1, total: int | None = None) -> None:
                bar.update(task, advance=n, total=total)

            yield advance
