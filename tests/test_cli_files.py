"""Issue 17, points 12 and 13 (the CLI's files): the credentials file is 0600 even when it existed
before with a wider mode; a damaged config or credentials file is named with what is wrong; a
profile name cannot write extra sections into config.ini."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ksef_client.cli import main
from ksef_client.cli.config import ConfigFileError, CredentialStore


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KSEF_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("KSEF_CREDENTIAL_STORE", "file")
    for name in ("KSEF_ACCESS_TOKEN", "KSEF_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_world_readable_credentials_file_is_narrowed_when_written_and_when_read(config: Path) -> None:
    credentials = config / "credentials.json"
    credentials.write_text("{}")
    credentials.chmod(0o644)
    CredentialStore().set("default", "ksef-token", "secret")
    assert _mode(credentials) == 0o600
    credentials.chmod(0o666)
    assert CredentialStore().get("default", "ksef-token") == "secret"
    assert _mode(credentials) == 0o600


@pytest.mark.parametrize(
    ("content", "what"),
    [("{not json", "not JSON"), ("[1, 2]", "not an object"), ('{"default/login": "{}"}', "lacks 'reference_number'")],
    ids=["bad-json", "wrong-type", "damaged-login"],
)
def test_a_damaged_credentials_file_is_named_with_what_is_wrong(
    config: Path, capsys: pytest.CaptureFixture[str], content: str, what: str
) -> None:
    (config / "credentials.json").write_text(content)
    assert main(["auth", "status"]) != 0
    err = capsys.readouterr().err
    assert what in err and ("credentials.json" in err or "profile 'default'" in err)
    assert "error: 'access_token'" not in err


def test_a_damaged_config_file_is_named(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config / "config.ini").write_text("[default\nenvironment = TEST\n")
    assert main(["profile", "list"]) != 0
    assert "config.ini is damaged" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["evil]\n[default", "a]b", "with\nnewline", "", ".x", "x" * 65])
def test_a_profile_name_cannot_write_extra_sections(
    config: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert main(["profile", "set", "good", "--env", "TEST"]) == 0
    before = (config / "config.ini").read_text()
    assert main(["profile", "set", name, "--env", "PROD"]) != 0
    assert "profile name" in capsys.readouterr().err
    assert (config / "config.ini").read_text() == before


# --- credentials.json is replaced whole, under a lock (security review, session 10, finding 3) ---

WRITES = 40


def _writer(config_dir: str, name: str, start: Any, errors: Any) -> None:
    """Save ``WRITES`` secrets of profile ``name``, reading the file back between them."""
    os.environ.update(KSEF_CONFIG_DIR=config_dir, KSEF_CREDENTIAL_STORE="file")
    store = CredentialStore()
    start.wait()
    for i in range(WRITES):
        store.set(f"{name}-{i}", "ksef-token", f"secret {name} {i}")
        try:
            store.get(name, "ksef-token")
        except ConfigFileError:
            errors.value += 1


def test_two_processes_saving_at_once_lose_nothing_and_never_read_a_torn_file(config: Path) -> None:
    # Every command that refreshes a token saves it: cron beside an interactive run, two CI jobs.
    # The file was truncated and rewritten in place: a reader in between found it damaged (and was
    # told to delete it), and of two writers one lost the other's change.
    context = multiprocessing.get_context("spawn")
    start, errors = context.Barrier(2), context.Value("i", 0)
    workers = [context.Process(target=_writer, args=(str(config), name, start, errors)) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    saved = json.loads((config / "credentials.json").read_text())
    assert len(saved) == 2 * WRITES and errors.value == 0
    assert _mode(config / "credentials.json") == 0o600
    assert sorted(p.name for p in config.iterdir()) == ["credentials.json", "credentials.json.lock"]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_write_that_fails_half_way_leaves_the_old_file_whole(config: Path) -> None:
    # A full disk (here: a file size limit, so the write fails with EFBIG after 1,000 bytes) or a
    # kill in the middle left credentials.json empty or cut short, every profile's secrets lost.
    for i in range(20):
        CredentialStore().set(f"p{i}", "ksef-token", "x" * 50)
    before = (config / "credentials.json").read_bytes()
    code = (
        "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)); "
        "from ksef_client.cli.config import CredentialStore; CredentialStore().set('new', 'ksef-token', 'y' * 50)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "File too large" in done.stderr
    assert (config / "credentials.json").read_bytes() == before
    assert sorted(p.name for p in config.iterdir()) == ["credentials.json", "credentials.json.lock"]


def test_a_damaged_credentials_file_is_not_to_be_deleted(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Deleting it, as the error said, lost every profile's saved KSeF token with the damaged login.
    (config / "credentials.json").write_text("{not json")
    assert main(["auth", "status"]) != 0
    err = capsys.readouterr().err
    assert "delete it" not in err and "every profile" in err and "move it aside" in err
