"""``ksef``: the command-line interface (``pip install ksef-sdk[cli]``).

Run ``ksef --help``. Exit codes and output formats are documented in ``ksef_client.cli.output``.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ksef_client.cli.output import Output

# What the cli extra installs. rich and keyring are imported only when a command prints for people
# or reads a stored secret, so each is looked for here, before any command runs: click alone
# (which uvicorn of the mock extra brings too) let a command do its work (send invoices) and fail
# only when it printed what it did.
CLI_EXTRA = ("click", "rich", "keyring")
_NEEDS_CLI = "error: the ksef command needs the cli extra: pip install 'ksef-sdk[cli]'"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ksef`` script: run a command, print errors in one line, return the exit code."""
    missing = [name for name in CLI_EXTRA if find_spec(name) is None]
    if missing:
        sys.stderr.write(f"{_NEEDS_CLI} (missing: {', '.join(missing)})\n")
        return 2
    try:
        import click  # noqa: PLC0415 - the cli extra is optional

        from ksef_client.cli.commands import State, cli  # noqa: PLC0415
        from ksef_client.cli.output import INTERRUPTED, USAGE, Output, exit_code  # noqa: PLC0415
    except ImportError as error:
        sys.stderr.write(f"{_NEEDS_CLI} ({error})\n")
        return 2
    args = sys.argv[1:] if argv is None else argv
    out = Output("--json" in args)  # for the error line: also a --json the command did not get to
    state = State()
    code = 0
    failure: BaseException | None = None
    try:
        # When not standalone, click returns the code of a command's ``ctx.exit(code)`` instead of raising.
        returned = cli.main(args=argv, prog_name="ksef", standalone_mode=False, obj=state)
        code = returned if isinstance(returned, int) else 0
    except click.exceptions.Exit as done:
        code = int(done.exit_code)
    except click.ClickException as error:
        error.show()
        _global_option_hint(error)
        code = USAGE if error.exit_code == 2 else error.exit_code
    except (click.Abort, KeyboardInterrupt) as error:
        # click turns a KeyboardInterrupt into an Abort raised from it: the notes are the interrupt's.
        interrupt = error.__cause__ if isinstance(error.__cause__, KeyboardInterrupt) else error
        failure, code = interrupt, INTERRUPTED
    except Exception as error:
        failure, code = error, exit_code(error)
    # A login refreshed during the command is saved once it has printed its result: a failed save
    # (a locked credentials file, a keyring error) never hides what the command did.
    unsaved = state.save_refreshed()
    if failure is not None:
        # Every failure ends as one line on stderr and a documented exit code, then its notes.
        out.error(failure, "interrupted" if code == INTERRUPTED else None)
    if unsaved is not None:
        _warn_unsaved(out, unsaved, failed=failure is not None or code != 0)
    return code


def _global_option_hint(error: Exception) -> None:
    """After click's "No such option: -p": where the options of ``ksef`` itself go."""
    import click  # noqa: PLC0415

    if isinstance(error, click.NoSuchOption) and error.option_name in ("-p", "--profile"):
        path = error.ctx.command_path if error.ctx is not None else "ksef COMMAND"
        command = path.removeprefix("ksef").strip() or "COMMAND"
        sys.stderr.write(
            f"hint: {error.option_name} is an option of ksef itself: it goes before the command, "
            f"`ksef {error.option_name} NAME {command} ...`\n"
        )


def _warn_unsaved(out: Output, error: BaseException, *, failed: bool) -> None:
    """Say that the login refreshed during the command was not saved (the saved one still logs in
    while its refresh token is valid: the next command refreshes it again)."""
    from ksef_client.cli.output import error_line  # noqa: PLC0415

    reason = error_line(error).removeprefix("error: ")
    after = "" if failed else "the command succeeded (see above), but "
    out.note(
        f"{after}the login KSeF refreshed during it could not be saved ({reason}); the saved login still "
        "works while its refresh token is valid: the next command refreshes it again",
        "note" if failed else "warning",
    )


if __name__ == "__main__":
    sys.exit(main())
