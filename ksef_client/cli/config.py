"""Profiles (which KSeF, which context) and where the CLI keeps a login between commands.

Profiles live in ``config.ini`` in the config directory (``KSEF_CONFIG_DIR``, default
``~/.config/ksef``); they hold no secrets. It is changed as ``credentials.json`` is: under its lock,
replaced whole (``locked``, ``write_durably``; a symlinked one at its target). Secrets (the access
and refresh tokens of a login, a saved KSeF token) go to the OS keyring when one is available,
otherwise to a file only the user can read (mode 0600) in the same directory.
``KSEF_CREDENTIAL_STORE=file`` forces the file.

Each secret is saved with the KSeF it is for (``Profile.ksef``: the environment, or the base URL),
and the commands use it only while the profile still points there: a login or KSeF token is never
sent to another server because the profile was re-pointed (``ksef profile set``). A secret saved
by an earlier version, without its KSeF, is used only while the profile points at one of the
Ministry's environments (``made_for``); at any other base URL nowhere (log in, or save the token,
again)."""

from __future__ import annotations

import configparser
import datetime as dt
import errno
import io
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ksef_client.environments import Environment
from ksef_client.identifiers import validate_nip

if TYPE_CHECKING:
    from ksef_client.resources.auth import AuthTokens

KEYRING_SERVICE = "ksef-sdk"
# Seconds a ``ksef`` process waits for another one's change of config.ini or credentials.json (a
# read, a change and an atomic write: milliseconds).
LOCK_WAIT = 10.0
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

    @property
    def ksef(self) -> str:
        """Where this profile points, as its saved secrets record it: ``ksef_of`` its base URL or
        environment."""
        return ksef_of(self.base_url, self.environment)


def ksef_of(base_url: str | None, environment: str = "TEST") -> str:
    """The KSeF a secret belongs to, in one spelling: an environment's name (``TEST``, ``DEMO``,
    ``PROD``; also for a base URL that is an environment's own), else the base URL with its scheme
    and host in lower case and no trailing ``/`` (as the client uses it)."""
    if not base_url:
        return environment.upper()
    text = base_url.strip()
    parts = urlsplit(text)
    url = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, ""))
    for known in Environment:
        if url == known.base_url:
            return known.name
    return url


def made_for(saved_at: str | None, here: str) -> str | None:
    """The KSeF a saved secret is for (``saved_at``, its record), given the one its profile points
    at now (``here``). A secret saved by an earlier version has no record (``None``): it is taken as
    the profile's when that is one of the Ministry's own environments (``TEST``, ``DEMO``, ``PROD``),
    whose servers it was made for or at worst another of (the same operator); at any other base URL
    it stays ``None``, and is sent nowhere."""
    if saved_at is None and here in Environment.__members__:
        return here
    return saved_at


def client_options_of(ksef: str) -> dict[str, Any]:
    """Keyword arguments for ``KSeF(...)`` that reach the KSeF ``ksef`` (``ksef_of``) names."""
    return {"environment": ksef} if ksef in Environment.__members__ else {"base_url": ksef}


def _parser() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    path = config_dir() / "config.ini"
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())[:200]
        raise ConfigFileError(f"{path} is damaged: {reason}; fix or delete it (profiles are kept there)") from None
    return parser


def profile_name(name: str | None) -> str:
    """The profile a command uses: ``name`` (``-p``), else ``KSEF_PROFILE``, else ``default``;
    ``ValueError`` for a name no profile can have."""
    return validate_profile_name(name or os.environ.get("KSEF_PROFILE") or DEFAULT_PROFILE)


def load_profile(name: str | None) -> Profile:
    """The named profile (``KSEF_PROFILE`` or ``default`` when ``None``); an unknown name is an error
    unless it is the default, which falls back to KSeF TEST."""
    name = profile_name(name)
    parser = _parser()
    if not parser.has_section(name):
        if name != DEFAULT_PROFILE:
            raise ValueError(
                f"no profile {name!r}: create it with `ksef profile set {name} --env TEST` "
                "(or --base-url URL for another KSeF, such as the emulator)"
            )
        return Profile()
    return _profile_of(parser, name)


def _profile_of(parser: configparser.ConfigParser, name: str) -> Profile:
    section = parser[name]
    return Profile(name, section.get("environment", "TEST"), section.get("base_url"), section.get("nip"))


def has_profile(name: str) -> bool:
    """Whether a profile of that name is saved (``load_profile`` falls back to TEST for ``default``)."""
    return _parser().has_section(name)


def check_base_url(url: str, *, insecure_http: bool = False) -> str:
    """``url`` (stripped) if it can be a KSeF API's base URL: ``http`` or ``https`` with a host (and
    a valid port, if any); plain ``http`` only to this machine (``localhost``, a loopback address)
    unless ``insecure_http``: invoices and tokens would cross the network unencrypted. ``ValueError``
    otherwise, before it is saved (``ksef profile set``), saying what to write instead."""
    from ksef_client._settings import _is_loopback  # noqa: PLC0415 - not loaded for --help

    text = url.strip()
    parts = urlsplit(text)
    example = "e.g. https://api-test.ksef.mf.gov.pl/v2, or http://127.0.0.1:8000/v2 for the emulator"
    if parts.scheme.lower() not in ("http", "https") or "://" not in text:
        guess = f"; http://{text}?" if "://" not in text and text else ""
        raise ValueError(f"--base-url {text!r}: not an http(s) URL ({example}){guess}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
    except ValueError as error:
        raise ValueError(f"--base-url {text!r}: {error} ({example})") from None
    if not parts.hostname:
        raise ValueError(f"--base-url {text!r}: no host ({example})")
    if parts.scheme.lower() == "http" and not insecure_http and not _is_loopback(parts.hostname):
        raise ValueError(
            f"--base-url {text!r}: plain http to another machine sends invoices and tokens unencrypted; use "
            "https, or http only to this machine (localhost, 127.0.0.1, ::1); --insecure-http allows it "
            "(an emulator in a container or on a test network)"
        )
    return text


def set_profile(
    name: str,
    environment: str | None = None,
    base_url: str | None = None,
    nip: str | None = None,
    *,
    insecure_http: bool = False,
) -> tuple[Profile | None, Profile, Path]:
    """``ksef profile set``: create profile ``name``, or change what is given of an existing one
    and keep the rest (its KSeF: the base URL or environment; its NIP). ``base_url`` points it
    there (checked: ``check_base_url``); ``environment`` alone points it at that environment
    (dropping a base URL); ``nip`` ``""`` removes the NIP. Read, changed and written under the
    file's lock, in one piece: the profile before (``None``: new), after, and the file's path."""
    validate_profile_name(name)
    if base_url is not None:
        base_url = check_base_url(base_url, insecure_http=insecure_http)
    if environment is not None:
        environment = Environment[environment.upper()].name
    if nip:
        nip = validate_nip(nip, "--nip")
    path = config_dir() / "config.ini"
    with locked(path):
        parser = _parser()
        before = _profile_of(parser, name) if parser.has_section(name) else None
        after = Profile(name) if before is None else Profile(name, before.environment, before.base_url, before.nip)
        if base_url is not None:
            after.base_url = base_url
            after.environment = environment or after.environment
        elif environment is not None:
            after.base_url, after.environment = None, environment
        if nip is not None:
            after.nip = nip or None
        parser[name] = {k: v for k, v in asdict(after).items() if k != "name" and v is not None}
        _write_config(path, parser)
    return before, after, path


# What a rename onto config.ini answers when that name is a mount point (a file bind-mounted into a
# container: EBUSY) or on another file system than its folder (EXDEV).
_NOT_RENAMED_OVER = frozenset({errno.EBUSY, errno.EXDEV})


def _write_config(path: Path, parser: configparser.ConfigParser) -> None:
    """Write ``parser`` to ``path`` (under its lock): replaced whole (``write_durably``). A symlinked
    config.ini (dotfiles, stow, configuration management) is written at its target, the link left as
    it is. A config.ini that cannot be renamed over (a mount point: ``_NOT_RENAMED_OVER``) is
    rewritten in place: not atomic there (a crash or a full disk in the middle can cut it short)."""
    from ksef_client._durable import write_durably  # noqa: PLC0415 - not loaded for --help

    text = io.StringIO()
    parser.write(text)
    data = text.getvalue().encode("utf-8")
    target = path.resolve()  # the link's target; path itself when it is no link
    try:
        write_durably(target, data)
    except OSError as error:
        if error.errno not in _NOT_RENAMED_OVER or not target.is_file():
            raise
        _write_in_place(target, data)


def _write_in_place(path: Path, data: bytes) -> None:
    """Overwrite the existing file ``path`` with ``data`` (its mode and owner kept), flushed to disk."""
    with path.open("r+b") as file:
        file.write(data)
        file.truncate()
        file.flush()
        os.fsync(file.fileno())


def list_profiles() -> list[Profile]:
    """Every saved profile."""
    parser = _parser()
    return [_profile_of(parser, name) for name in parser.sections()]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` while ``path`` (``config.ini``, ``credentials.json``) is read, changed
    and written again, so two ``ksef`` processes (cron beside an interactive run, two CI jobs)
    never lose each other's change. An OS lock (``flock``; ``msvcrt.locking`` on Windows) that
    ends with its process; a second process waits for it up to ``LOCK_WAIT`` seconds. Readers need
    none: the file is replaced whole (``write_durably``), never changed in place (but for a
    config.ini that is a mount point: ``_write_config``). The lock is beside ``path`` as named (in
    the config directory), also when ``path`` is a symlink written at its target."""
    from ksef_client._durable import hold_lock  # noqa: PLC0415 - not loaded for --help

    path.parent.mkdir(parents=True, exist_ok=True)

    def busy() -> ConfigFileError:
        return ConfigFileError(
            f"{path} is locked by another ksef process for more than {LOCK_WAIT:g} s "
            f"({path.name}.lock); try again when it has finished"
        )

    with hold_lock(path.with_name(path.name + ".lock"), busy, wait=LOCK_WAIT, best_effort=True):
        yield


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
        with self._locked():
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
        with self._locked():
            data = self._read_file()
            found = data.pop(f"{profile}/{kind}", None) is not None
            if found:
                self._write_file(data)
        return found

    def _locked(self) -> AbstractContextManager[None]:
        """``credentials.json.lock`` held while the file is read, changed and written (``locked``)."""
        return locked(self._file)

    def _read_file(self) -> dict[str, Any]:
        path = self._file
        try:
            _owner_only(path)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError:
            raise ConfigFileError(f"{path} is damaged: not UTF-8 text; {_REPAIR}") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ConfigFileError(f"{path} is damaged: not JSON ({error}); {_REPAIR}") from None
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise ConfigFileError(f"{path} is damaged: a JSON {kind}, not an object; {_REPAIR}")
        return data

    def _write_file(self, data: dict[str, Any]) -> None:
        # Atomic and durable (``write_durably``): a new file of mode 0600 beside it (the tokens are
        # never readable by others, not even briefly), flushed, then renamed over the old one. A
        # reader sees the old file or the new one, never an empty or half-written one, and a crash
        # or a full disk leaves the old one whole.
        from ksef_client._durable import write_durably  # noqa: PLC0415 - not loaded for --help

        write_durably(self._file, json.dumps(data).encode("utf-8"))


# What a damaged credentials file's error suggests: not to delete it, which would lose every
# profile's saved KSeF token with the damaged login.
_REPAIR = (
    "it holds the saved logins and KSeF tokens of every profile: repair it, or move it aside and "
    "log in (and save KSeF tokens) again"
)


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


def tokens_to_json(tokens: AuthTokens, ksef: str) -> str:
    """A login's tokens as stored, with the KSeF they are for (``Profile.ksef``)."""
    return json.dumps(
        {
            "ksef": ksef,
            "reference_number": tokens.reference_number,
            "access_token": tokens.access_token,
            "access_valid_until": tokens.access_valid_until.isoformat(),
            "refresh_token": tokens.refresh_token,
            "refresh_valid_until": tokens.refresh_valid_until.isoformat(),
        }
    )


def login_from_json(text: str, source: str = "the saved login") -> tuple[AuthTokens, str | None]:
    """Inverse of ``tokens_to_json``: the tokens and the KSeF they are for (``None``: saved by an
    earlier version, which did not record it); ``ConfigFileError`` naming ``source`` and what is
    wrong."""
    from ksef_client.resources.auth import AuthTokens  # noqa: PLC0415 - not loaded for --help

    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        ksef = data.get("ksef")
        if ksef is not None and not isinstance(ksef, str):
            raise TypeError(f"its KSeF is a JSON {type(ksef).__name__}, not a string")
        tokens = AuthTokens(
            str(data["reference_number"]),
            str(data["access_token"]),
            dt.datetime.fromisoformat(data["access_valid_until"]),
            str(data["refresh_token"]),
            dt.datetime.fromisoformat(data["refresh_valid_until"]),
        )
    except KeyError as error:
        raise ConfigFileError(f"{source} is damaged: it lacks {error}; run `ksef auth login` again") from None
    except (ValueError, TypeError, RecursionError) as error:
        raise ConfigFileError(f"{source} is damaged: {error}; run `ksef auth login` again") from None
    return tokens, ksef


# A saved KSeF token: {"format": ..., "ksef": ..., "token": ...}. An earlier version saved the
# token's text alone (a KSeF token is never a JSON object).
KSEF_TOKEN_FORMAT = "ksef-cli-ksef-token/1"  # noqa: S105 - a format name, no secret


def ksef_token_to_json(token: str, ksef: str) -> str:
    """A KSeF token as stored, with the KSeF it is for (``Profile.ksef``)."""
    return json.dumps({"format": KSEF_TOKEN_FORMAT, "ksef": ksef, "token": token})


def ksef_token_from_json(text: str) -> tuple[str, str | None]:
    """Inverse of ``ksef_token_to_json``: the token and the KSeF it is for; a token saved by an
    earlier version (its text alone) is ``(text, None)``."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else None
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and data.get("format") == KSEF_TOKEN_FORMAT:
        token, ksef = data.get("token"), data.get("ksef")
        if isinstance(token, str) and isinstance(ksef, str):
            return token, ksef
    return text, None
