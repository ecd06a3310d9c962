"""Which hand-written files use an operation or a schema: the "affects" tags of the change report.

The files are read once (``CodeIndex.scan``); every question is a few regular expressions over
them. Python files count when they import the generated function (``from
ksef_client._generated.api.tokens import create_token``), name ``"tag.operation_id"`` (the
emulator's ``api_endpoint``) or use the generated model class; Markdown files when they mention
the operation's path or the schema's name, outside blocks of sample output (```` ```text ````).
The generated package itself is not searched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from generator.preprocess import OperationName

SOURCE_DIRS = ("ksef_client", "examples", "bench")
DOC_FILES = ("README.md",)
DOC_DIRS = ("docs",)
SKIPPED = ("ksef_client/_generated/", "ksef_client/_data/")
# Markdown blocks of sample output (```text) quote names without using them.
SAMPLE_OUTPUT = re.compile(r"^```text\n.*?^```", re.MULTILINE | re.DOTALL)


@dataclass
class CodeIndex:
    """The hand-written files of a checkout, by path relative to its root, and the words in each."""

    files: dict[str, str]
    _files_with: dict[str, set[str]] = field(default_factory=dict, init=False)
    _found: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.files = {path: SAMPLE_OUTPUT.sub("", text) if path.endswith(".md") else text
                      for path, text in self.files.items()}  # fmt: skip
        for path, text in self.files.items():
            for word in set(re.findall(r"\w+", text)):
                self._files_with.setdefault(word, set()).add(path)

    @classmethod
    def scan(cls, root: Path) -> CodeIndex:
        """Read the SDK, emulator, examples, bench scripts and docs under ``root``."""
        paths = [path for folder in SOURCE_DIRS for path in (root / folder).rglob("*.py")]
        paths += [path for folder in DOC_DIRS for path in (root / folder).rglob("*.md")]
        paths += [root / name for name in DOC_FILES if (root / name).is_file()]
        files = {}
        for path in sorted(paths):
            relative = path.relative_to(root).as_posix()
            # hidden folders are virtualenvs and caches (make bench's bench/.baseline-venv...), not ours
            if not relative.startswith(SKIPPED) and not any(part.startswith(".") for part in relative.split("/")[:-1]):
                files[relative] = path.read_text(encoding="utf-8", errors="replace")
        return cls(files)

    def _having(self, words: list[str], suffix: str) -> list[str]:
        """Files ending in ``suffix`` that contain every one of ``words``."""
        found = set.intersection(*(self._files_with.get(word, set()) for word in words)) if words else set()
        return sorted(path for path in found if path.endswith(suffix))

    def _matching(self, key: str, search: list[tuple[list[str], str, re.Pattern[str]]]) -> tuple[str, ...]:
        """Files matching any ``(words, suffix, pattern)``: the words narrow the files the pattern reads."""
        if key not in self._found:
            found = {
                path
                for words, suffix, pattern in search
                for path in self._having(words, suffix)
                if pattern.search(self.files[path])
            }
            self._found[key] = tuple(sorted(found))
        return self._found[key]

    def operation_users(self, key: str, name: OperationName | None) -> tuple[str, ...]:
        """Files using the operation ``key`` (``"GET /rate-limits"``), named ``name`` in the overlay."""
        path = key.split(" ", 1)[1]
        static = re.findall(r"\w+", re.sub(r"\{[^}]*\}", "", path))
        search = [(static, ".md", path_pattern(path))]
        if name is not None:
            called = rf"\b{name.tag}\.{name.operation_id}\b"
            imported = rf"_generated\.api\.{name.tag} import \(?[\w\s,]*\b{name.operation_id}\b"
            search.append(([name.operation_id], ".py", re.compile(f"{called}|{imported}")))
        return self._matching(f"op:{key}", search)

    def schema_users(self, schema: str, generated_class: bool) -> tuple[str, ...]:
        """Files using the generated model of ``schema`` (only schemas that become a class)."""
        if not generated_class:
            return ()
        word = re.compile(rf"\b{schema}\b")
        module = snake_case(schema)
        search = [
            ([schema], ".py", word),
            ([schema], ".md", word),
            ([module], ".py", re.compile(rf"models[./]{module}\b")),
        ]
        return self._matching(f"schema:{schema}", search)


def path_pattern(path: str) -> re.Pattern[str]:
    """A path as docs write it: any name in the braces, not followed by a longer path."""
    parts = re.split(r"\{[^}]*\}", path)
    return re.compile(r"\{[^}/\s]*\}".join(map(re.escape, parts)) + r"(?![\w/{-])")


def snake_case(name: str) -> str:
    """``InvoicePackage`` -> ``invoice_package``: the generated module of a model."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
