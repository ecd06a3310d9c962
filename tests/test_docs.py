"""Every ``python`` and ``console`` block of docs/ runs against the emulator, page by page, in order.

A page's Python blocks share one namespace, seeded as docs/README.md says (``ksef``, ``emulator``,
``nip``, ``invoice_xml``). A block that starts with ``# file: test_*.py`` is a pytest module: it is
written out and run by pytest in a child process. ``console`` blocks are ``$ ksef ...`` commands,
run through the CLI's entry point with a default profile pointing at the emulator; each must exit 0.

A ``print(...)  # text`` line promises its output: the text, ``...`` and ``<placeholder>`` standing
for anything (prose about a print goes on the line above it); every such line must print, and
what it prints must match.

README.md's ``python`` blocks run too, as a reader copies them: nothing seeded, against an emulator
served over HTTP at the address the README names (``http://127.0.0.1:8000/v2``, swapped for the
test's emulator). Fragments that do not run on their own are ``py`` blocks there.
"""

from __future__ import annotations

import builtins
import datetime as dt
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ksef_client.cli import main as ksef_cli
from ksef_client.mock.faults import DROP_AFTER
from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import sample_invoice
from tests.conftest import NIP, ROOT
from tests.helpers import FakeTime

DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(python|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = sorted(DOCS.glob("*.md"))


def blocks(page: Path) -> list[tuple[str, str]]:
    """The executable blocks of a page: ``(language, code)``."""
    return BLOCK.findall(page.read_text(encoding="utf-8"))


PROMISED = re.compile(r"^\s*print\(.*\)  # (?P<output>.+)$")
WILDCARD = re.compile(r"(\.\.\.|<[^<>]+>)")


class Prints:
    """``print`` for the examples: prints, and keeps what each line of a block printed."""

    def __init__(self) -> None:
        self.printed: dict[tuple[str, int], list[str]] = {}

    def __call__(self, *values: object, sep: str | None = " ", end: str | None = "\n", **options: Any) -> None:
        builtins.print(*values, sep=sep, end=end, **options)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        self.printed.setdefault(key, []).append((" " if sep is None else sep).join(map(str, values)))

    def check(self, code: str, label: str) -> None:
        """Each ``print`` of ``code`` with its output in a comment printed that, every time it ran."""
        for number, line in enumerate(code.splitlines(), start=1):
            if promised := PROMISED.match(line):
                pattern = "".join(
                    ".*" if WILDCARD.fullmatch(part) else re.escape(part) for part in WILDCARD.split(promised["output"])
                )
                printed = self.printed.get((label, number))
                assert printed, f"{label}, line {number}: never printed ({line.strip()})"
                wrong = [text for text in printed if not re.fullmatch(pattern, text.strip(), re.DOTALL)]
                assert not wrong, f"{label}, line {number}: printed {wrong[0]!r}, the page says {promised['output']!r}"


def test_the_docs_cover_what_issue_9_lists() -> None:
    names = {p.stem for p in PAGES}
    assert {
        "authentication",
        "sending",
        "status-and-upo",
        "pagination",
        "downloading",
        "errors-and-retries",
        "testing-with-the-emulator",
        "conformance-and-spec-updates",
        "performance",
        "cli",
    } <= names
    assert sum(len(blocks(p)) for p in PAGES) >= 25


def _run_pytest_module(code: str, directory: Path) -> None:
    name = code.splitlines()[0].removeprefix("# file:").strip()
    (directory / name).write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def _run_console(code: str, label: str) -> None:
    for line in code.splitlines():
        if line.startswith("$ ksef "):
            assert ksef_cli(shlex.split(line)[2:]) == 0, f"{label}: {line}"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_page_runs(page: Path, ksef_mock: KSeFMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KSEF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("KSEF_CREDENTIAL_STORE", "file")
    monkeypatch.setenv("KSEF_ACCESS_TOKEN", ksef_mock.token(NIP))
    assert ksef_cli(["profile", "set", "default", "--base-url", ksef_mock.base_url, "--nip", NIP]) == 0
    for i in range(1, 10):
        (tmp_path / f"invoice-{i}.xml").write_bytes(sample_invoice(f"DOC/{page.stem}/{i}"))
    fake, prints = FakeTime(), Prints()
    with ksef_mock.client(NIP, sleep=fake.sleep, clock=fake.clock) as ksef:
        namespace: dict[str, Any] = {
            "ksef": ksef,
            "emulator": ksef_mock,
            "nip": NIP,
            "invoice_xml": sample_invoice("FV/1/2026"),
            "__name__": "docs",
            "print": prints,
        }
        for number, (language, code) in enumerate(blocks(page), start=1):
            label = f"{page.name} block {number}"
            if language == "console":
                _run_console(code, label)
            elif code.startswith("# file: test_"):
                _run_pytest_module(code, tmp_path)
            else:
                exec(compile(code, label, "exec"), namespace)  # the docs' own examples, by design
                prints.check(code, label)


README_EMULATOR = "http://127.0.0.1:8000/v2"


def test_readme_quick_start_runs_against_the_emulator(
    ksef_mock: KSeFMock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code = blocks(ROOT / "README.md")
    python = [c for language, c in code if language == "python"]
    assert python and README_EMULATOR in python[0], "the README's quick start names the emulator's address"
    prints = Prints()
    for number, block in enumerate(python, start=1):
        namespace: dict[str, Any] = {"__name__": "readme", "print": prints}
        label = f"README.md block {number}"
        exec(compile(block.replace(README_EMULATOR, ksef_mock.base_url), label, "exec"), namespace)
        prints.check(block, label)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "200" and printed[1].startswith("accepted ") and "3" in printed


def test_the_lost_token_example_spares_an_older_token_with_the_same_description(
    ksef_mock: KSeFMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GET /tokens's description filter is "wyszukiwana w opisie tokena", in any case: the example revoked
    # every token it listed, the ERP's live token with the same description too (review s12-final, 2). It
    # now revokes only a Pending/Active token made since the moment before create, as the page says.
    (code,) = [c for _, c in blocks(DOCS / "authentication.md") if "def create_token" in c]
    backend = ksef_mock.backend
    backend.transitions.token_reads = 0
    with ksef_mock.client(NIP) as ksef:
        last_month = backend.clock() - dt.timedelta(days=30)
        monkeypatch.setattr(backend, "clock", lambda: last_month)
        live = ksef.tokens.create(["InvoiceRead"], "ERP integration")  # in use by the ERP
        monkeypatch.undo()
        namespace: dict[str, Any] = {"ksef": ksef, "__name__": "docs", "print": lambda *values: None}
        exec(compile(code, "authentication.md", "exec"), namespace)  # the page's block: makes its own token
        backend.faults.add(DROP_AFTER, operation="tokens.create_token")
        assert namespace["create_token"](ksef, ["InvoiceRead"], "ERP integration") is None
        found = {t.reference_number: (t.description, t.status) for t in ksef.tokens.list(description="erp integ")}
    assert found.pop(live.reference_number) == ("ERP integration", "Active")  # the live token survives
    orphan, made_by_the_page = sorted(found.values())  # "ERP integration" sorts before "ERP integration 1a2b..."
    assert made_by_the_page[1] == "Active" and made_by_the_page[0].startswith("ERP integration ")
    assert orphan == ("ERP integration", "Revoked")  # the one whose answer was lost
