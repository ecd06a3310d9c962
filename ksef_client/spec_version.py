"""Which KSeF API version a spec declares, which one this SDK is pinned to, and comparing them.

KSeF publishes its OpenAPI spec at ``<host>/docs/v2/openapi.json`` (for the API base URL
``<host>/v2``). The spec's ``info.version`` is just ``"v2"``; the API version and build are written
in ``info.description``: ``**Wersja API:** 2.9.0 (build 2.9.0-te-20261014.1+9ffc…)``. The SDK
ships the spec it was generated from (``ksef_client/_data/ksef-openapi.json``), so the pin is read
from there. Standard library only: the generator and the emulator use it too.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SPEC_PATH = "/docs/v2/openapi.json"
_VERSION = re.compile(r"Wersja API:\**\s*([0-9][0-9A-Za-z.\-]*)")
_BUILD = re.compile(r"\(build\s+([^)\s<]+)")
_NUMBERS = re.compile(r"[0-9]+(?:\.[0-9]+)*")


@dataclass(frozen=True)
class SpecVersion:
    """The API version a spec declares (``"2.9.0"``) and its build, when it names one."""

    api_version: str
    build: str | None = None

    def __str__(self) -> str:
        return self.api_version + (f" (build {self.build})" if self.build else "")


def declared_version(spec: dict[str, Any]) -> SpecVersion | None:
    """The version and build written in ``info.description`` ("Wersja API: 2.9.0 (build ...)");
    ``None`` when the description names no version."""
    info = spec.get("info")
    description = str(info.get("description", "")) if isinstance(info, dict) else ""
    version = _VERSION.search(description)
    if version is None:
        return None
    build = _BUILD.search(description, version.end())
    return SpecVersion(version[1], build[1] if build else None)


def api_version(spec: dict[str, Any]) -> str:
    """The API version KSeF writes in the description ("Wersja API: 2.7.0"), else ``info.version``."""
    declared = declared_version(spec)
    if declared is not None:
        return declared.api_version
    info = spec.get("info")
    return str(info.get("version")) if isinstance(info, dict) else "None"


def version_key(version: str) -> tuple[int, ...]:
    """The numeric part of a version for comparing (``"2.10.0"`` -> ``(2, 10, 0)``; trailing zeros
    dropped, so ``2.9`` equals ``2.9.0``); ``ValueError`` when it does not start with a number."""
    match = _NUMBERS.match(version.strip())
    if match is None:
        raise ValueError(f"not a version number: {version!r}")
    numbers = [int(part) for part in match[0].split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` is older than, the same as or newer than ``right`` (numerically:
    2.10.0 is newer than 2.9.0)."""
    a, b = version_key(left), version_key(right)
    return (a > b) - (a < b)


def spec_url(base_url: str) -> str:
    """Where the API at ``base_url`` publishes its spec: ``https://api-test.ksef.mf.gov.pl/v2`` ->
    ``https://api-test.ksef.mf.gov.pl/docs/v2/openapi.json`` (the emulator's base URL alike)."""
    root = base_url.rstrip("/").removesuffix("/v2")
    return root + SPEC_PATH


def pinned_spec_path() -> Path:
    """The spec this SDK was generated from, as shipped in the package (put there by ``make spec``)."""
    return Path(str(resources.files("ksef_client"))) / "_data" / "ksef-openapi.json"


@functools.cache
def pinned_schemas() -> dict[str, Any]:
    """The shipped spec's ``components.schemas``, parsed once per process (the filter checks and
    the QR code's context patterns read them; the file is about 1 MB)."""
    schemas: dict[str, Any] = json.loads(pinned_spec_path().read_text(encoding="utf-8"))["components"]["schemas"]
    return schemas


@functools.cache
def pinned_version() -> SpecVersion:
    """The API version and build this SDK is pinned to, read from the shipped spec;
    ``FileNotFoundError`` in a source checkout where ``make spec`` has not run."""
    spec = json.loads(pinned_spec_path().read_text(encoding="utf-8"))
    declared = declared_version(spec)
    if declared is None:
        raise ValueError(f"{pinned_spec_path()} names no API version in info.description")
    return declared
