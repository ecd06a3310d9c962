"""``ksef``: the command-line interface (``pip install ksef-sdk[cli]``).

Run ``ksef --help``. Exit codes and output formats are documented in ``ksef_client.cli.output``.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

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

        from ksef_client.cli.commands import cli  # noqa: PLC0415
        from ksef_client.cli.output import INTERRUPTED, USAGE, Output, exit_code  # noqa: PLC0415
    except ImportError as error:
        sys.stderr.write(f"{_NEEDS_CLI} ({error})\n")
        return 2
    as_json = "--json" in (sys.argv[1:] if argv is None else argv)
    code = 0
    try:
        # When not standalone, click returns the code of a command's ``ctx.exit(code)`` instead of raising.
        returned = cli.main(args=argv, prog_name="ksef", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0
    except click.exceptions.Exit as done:
        code = int(done.exit_code)
    except click.ClickException as error:
        error.show()
        code = USAGE if error.exit_code == 2 else error.exit_code
    except (click.Abort, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        code = INTERRUPTED
    except Exception as error:
        # Every other failure ends as one line on stderr and a documented exit code.
        Output(as_json).error(error)
        code = exit_code(error)
    return code


if __name__ == "__main__":
    sys.exit(main())
