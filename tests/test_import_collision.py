"""The other SDK on PyPI, ``ksef-client``, installs into the same ``ksef_client`` directory: its
files beside ours are reported at import with what to do (issue 20, point 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ksef_client


def test_our_own_package_holds_none_of_the_markers() -> None:
    directory = Path(ksef_client.__file__).parent
    assert not [m for m in ksef_client.OTHER_SDK_MARKERS if (directory / m).exists()]
    ksef_client._refuse_other_sdk(str(directory))  # nothing raised


@pytest.mark.parametrize("stray", ["clients/__init__.py", "openapi_models.py"])
def test_files_of_the_other_sdk_fail_the_import_with_the_fix(tmp_path: Path, stray: str) -> None:
    # ksef-client 0.20.0 ships ksef_client/clients/ and ksef_client/openapi_models.py (its RECORD).
    package = tmp_path / "ksef_client"
    package.mkdir()
    shutil.copy(Path(ksef_client.__file__), package / "__init__.py")
    (package / stray).parent.mkdir(parents=True, exist_ok=True)
    (package / stray).write_text("")
    result = subprocess.run(
        [sys.executable, "-c", "import ksef_client"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and str(package) in last
    assert "'ksef-client'" in last and "pip uninstall -y ksef-client ksef-sdk && pip install ksef-sdk" in last
