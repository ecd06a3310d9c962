"""Packaging smoke test (``make package``; not collected by pytest: it installs from PyPI).

Installs the built wheel with its extras into a fresh virtualenv, then, from a directory where the
source tree cannot be imported, checks the packaged data and runs an example and the ``ksef``
command against the emulator from the installed wheel, and ``python -m ksef_client.doctor`` (which
reads the pinned API version from the packaged spec).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECK_DATA = """
import importlib.resources, ksef_client
root = importlib.resources.files("ksef_client")
for name in (
    "py.typed", "_data/ksef-openapi.json", "_data/upo-v4-3.xsd", "_data/fa3/schemat_FA(3)_v1-0E.xsd",
    "_data/auth/schemat_auth_v2-0.xsd", "_data/auth/schemat_auth_v2-1.xsd",
):
    assert (root / name).is_file(), name
assert "site-packages" in ksef_client.__file__, ksef_client.__file__
print("package data ok:", ksef_client.__file__)
"""


def run(*command: str | Path, cwd: Path) -> str:
    """Run a command, fail loudly with its output."""
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"smoke test failed: {' '.join(map(str, command))}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def main(dist: Path) -> int:
    wheels = sorted(dist.glob("ksef_sdk-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one wheel in {dist}, found {wheels}")
    with tempfile.TemporaryDirectory(prefix="ksef-smoke-") as directory:
        work = Path(directory)
        venv.create(work / "venv", with_pip=True)
        python = work / "venv" / "bin" / "python"
        run(python, "-m", "pip", "install", "--quiet", f"{wheels[0]}[mock,cli]", cwd=work)
        print(run(python, "-c", CHECK_DATA, cwd=work).strip())
        shutil.copytree(ROOT / "examples", work / "examples")
        numbers = run(python, "-m", "examples.send_invoices", work / "upo", cwd=work).split()
        if not [n for n in numbers if n.count("-") == 4]:
            sys.exit(f"the example printed no KSeF numbers: {numbers}")
        print("example against the emulator:", numbers[-3:])
        print(run(work / "venv" / "bin" / "ksef", "--help", cwd=work).splitlines()[0])
        doctor = run(python, "-m", "ksef_client.doctor", cwd=work)  # the pin, read from the installed spec
        if "KSeF API (pin)  unknown" in doctor:
            sys.exit(f"ksef_client.doctor found no pinned spec in the wheel:\n{doctor}")
        print(doctor.splitlines()[1])
    print(f"smoke test passed: {wheels[0].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main((Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist").resolve()))
