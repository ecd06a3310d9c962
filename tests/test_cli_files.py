"""Issue 17, points 12 and 13 (the CLI's files): the credentials file is 0600 even when it existed
before with a wider mode; a damaged config or credentials file is named with what is wrong; a
profile name cannot write extra sections into config.ini."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ksef_client.cli import main
from ksef_client.cli.config import CredentialStore


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
