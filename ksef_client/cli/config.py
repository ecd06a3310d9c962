"""Profiles (which KSeF, which context) and where the CLI keeps a login between commands.

Profiles live in ``config.ini`` in the config directory (``KSEF_CONFIG_DIR``, default
``~/.config/ksef``); they hold no secrets. Secrets (the access and refresh tokens of a login, a
saved KSeF token) go to the OS keyring when one is available, otherwise to a file only the user
can read (mode 0600) in the same directory. ``KSEF_CREDENTIAL_STORE=file`` forces the file.
"""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksef_client.environments import Environment
from ksef_client.identifiers import validate_nip

if TYPE_CHECKING:
    from ksef_client.resources.auth import AuthTokens

KEYRING_SERVICE = "ksef-sdk"
DEFAULT_PROFILE = "default"
# A profile name is a section of config.ini and a key of the credentials: no brackets, no newlines.
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ConfigFileError(ValueError):
    """A configuration or credentials file that cannot be read: names the file and what is wrong."""


def validate_profile_name(name: str) -> str:
    """``name``, or ``ValueError``: letters, digits, ``_ . -``, at most 64, starting with a letter or digit."""
    if not isinstance(name, str) or not PROFILE_NAME.fullmatch(name):
        raise ValueError(
            f"profile name {name!r}: letters, digits, '_', '.' and '-' only (at most 64, not starting with '_.-')"
        )
    return name


def config_dir() -> Path:
    """Where profiles and file-stored credentials live."""
    return Path(os.environ.get("KSEF_CONFIG_DIR") or Path.home() / ".config" / "ksef")


@dataclass
class Profile:
    """One KSeF to talk to: an environment or a base URL, and the context (NIP) to log in to."""

    name: str = DEFAULT_PROFILE
    environment: str = "TEST"
    base_url: str | None = None
    nip: str | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``KSeF(...)``."""
        return {"base_url": self.base_url} if self.base_url else {"environment": self.environment}

    @property
    def target(self) -> str:
        """Where this profile points, for messages."""
        return self.base_url or self.environment


def _parser() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    path = config_dir() / "config.ini"
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())[:200]
        raise ConfigFileError(f"{path} is damaged: {reason}; fix or delete it (profiles are kept there)") from None
    return parser


def load_profile(name: str | None) -> Profile:
    """The named profile (``KSEF_PROFILE`` or ``default`` when ``None``); an unknown name is an error
    unless it is the default, which falls back to KSeF TEST."""
    name = validate_profile_name(name or os.environ.get("KSEF_PROFILE") or DEFAULT_PROFILE)
    parser = _parser()
    if not parser.has_section(name):
        if name != DEFAULT_PROFILE:
            raise ValueError(f"no profile {name!r}: create it with `ksef profile set {name} --env TEST`")
        return Profile()
    section = parser[name]
    return Profile(name, section.get("environment", "TEST"), section.get("base_url"), section.get("nip"))


def has_profile(name: str) -> bool:
    """Whether a profile of that name is saved (``load_profile`` falls back to TEST for ``default``)."""
    return _parser().has_section(name)


def save_profile(profile: Profile) -> Path:
    """Create or replace a profile; returns the config file's path."""
    validate_profile_name(profile.name)
    if profile.base_url is None:
        profile.environment = Environment[profile.environment.upper()].name
    if profile.nip:
        validate_nip(profile.nip, "nip")
    parser = _parser()
    parser[profile.name] = {k: v for k, v in asdict(profile).items() if k != "name" and v is not None}
    path = config_dir() / "config.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        parser.write(file)
    return path


def list_profiles() -> list[Profile]:
    """Every saved profile."""
    return [load_profile(name) for name in _parser().sections()]


class CredentialStore:
    """Secrets per profile: the OS keyring when there is one, else a 0600 file."""

    def __init__(self) -> None:
        self._keyring = None if os.environ.get("KSEF_CREDENTIAL_STORE") == "file" else _usable_keyring()

    @property
    def where(self) -> str:
        """A description for messages ("the OS keyring" or the file's path)."""
        return "the OS keyring" if self._keyring else str(self._file)

    @property
    def _file(self) -> Path:
        return config_dir() / "credentials.json"

    def get(self, profile: str, kind: str) -> str | None:
        """A stored secret (``kind``: ``login`` or ``ksef-token``)."""
        if self._keyring:
            value: str | None = self._keyring.get_password(KEYRING_SERVICE, f"{profile}/{kind}")
            return value
        stored = self._read_file().get(f"{profile}/{kind}")
        return stored if isinstance(stored, str) else None

    def set(self, profile: str, kind: str, secret: str) -> None:
        """Store a secret."""
        if self._keyring:
            self._keyring.set_password(KEYRING_SERVICE, f"{profile}/{kind}", secret)
            return
        data = self._read_file()
        data[f"{profile}/{kind}"] = secret
        self._write_file(data)

    def delete(self, profile: str, kind: str) -> bool:
        """Forget a secret; whether there was one."""
        if self._keyring:
            if self._keyring.get_password(KEYRING_SERVICE, f"{profile}/{kind}") is None:
                return False
            self._keyring.delete_password(KEYRING_SERVICE, f"{profile}/{kind}")
            return True
        data = self._read_file()
        found = data.pop(f"{profile}/{kind}", None) is not None
        self._write_file(data)
        return found

    def _read_file(self) -> dict[str, Any]:
        path = self._file
        try:
            _owner_only(path)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError:
            raise ConfigFileError(f"{path} is damaged: not UTF-8 text; delete it and log in again") from None
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ConfigFileError(f"{path} is damaged: not JSON ({error}); delete it and log in again") from None
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise ConfigFileError(f"{path} is damaged: a JSON {kind}, not an object; delete it and log in again")
        return data

    def _write_file(self, data: dict[str, Any]) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        # Created with 0600 from the start: the tokens are never readable by others, not even briefly;
        # a file that existed with a wider mode is narrowed before anything is written to it.
        descriptor = os.open(self._file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file)


def _owner_only(path: Path) -> None:
    """Narrow a secrets file that others may read (or write) to 0600."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)


def _usable_keyring() -> Any:
    try:
        import keyring  # noqa: PLC0415 - optional (the cli extra), and slow to import
        from keyring.backends import fail  # noqa: PLC0415
    except ImportError:
        return None
    backend = keyring.get_keyring()
    return None if isinstance(backend, fail.Keyring) or backend.priority <= 0 else keyring


def tokens_to_json(tokens: AuthTokens) -> str:
    """A login's tokens as stored."""
    return json.dumps(
        {
            "reference_number": tokens.reference_number,
            "access_token": tokens.access_token,
            "access_valid_until": tokens.access_valid_until.isoformat(),
            "refresh_token": tokens.refresh_token,
            "refresh_valid_until": tokens.refresh_valid_until.isoformat(),
        }
    )


def tokens_from_json(text: str, source: str = "the saved login") -> AuthTokens:
    """Inverse of ``tokens_to_json``; ``ConfigFileError`` naming ``source`` and what is wrong."""
    from ksef_client.resources.auth import AuthTokens  # noqa: PLC0415 - not loaded for --help

    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        tokens = AuthTokens(
            str(data["reference_number"]),
            str(data["access_token"]),
            dt.datetime.fromisoformat(data["access_valid_until"]),
            str(data["refresh_token"]),
            dt.datetime.fromisoformat(data["refresh_valid_until"]),
        )
    except KeyError as error:
        raise ConfigFileError(f"{source} is damaged: it lacks {error}; run `ksef auth login` again") from None
    except (ValueError, TypeError) as error:
        raise ConfigFileError(f"{source} is damaged: {error}; run `ksef auth login` again") from None
    return tokens
