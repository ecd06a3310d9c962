"""Build hook: the wheel and the sdist carry the pinned spec and XSDs (``ksef_client/_data``).

Every metadata lives in pyproject.toml; this file only makes ``build_py`` and ``sdist`` fill
``ksef_client/_data`` first through ``openapi/fetch_spec.py``. Lookup order: the files already in
``ksef_client/_data`` when each matches the lock, ``$KSEF_DATA`` (relative to this directory),
``../shared/ksef``, the official URLs in ``openapi/lock.json``; all SHA-256 checked. A file that
cannot be found or does not match stops the build with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent


def ensure_package_data() -> None:
    """Fill ksef_client/_data from the pinned sources, or stop the build."""
    spec = importlib.util.spec_from_file_location("ksef_fetch_spec", HERE / "openapi" / "fetch_spec.py")
    if spec is None or spec.loader is None:
        raise SystemExit("error: openapi/fetch_spec.py is missing: cannot bring the pinned spec and XSDs in")
    fetch_spec = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch_spec)
    data_dirs = [HERE / os.environ["KSEF_DATA"]] if os.environ.get("KSEF_DATA") else []
    data_dirs.append(HERE.parent / "shared" / "ksef")
    origin = fetch_spec.ensure_package_data(HERE / "ksef_client" / "_data", data_dirs)
    print(f"ksef_client/_data: pinned spec and XSDs from {origin}", file=sys.stderr)


class BuildPyWithData(build_py):
    def run(self) -> None:
        ensure_package_data()
        super().run()


class SdistWithData(sdist):
    def run(self) -> None:
        ensure_package_data()
        super().run()


setup(cmdclass={"build_py": BuildPyWithData, "sdist": SdistWithData})
