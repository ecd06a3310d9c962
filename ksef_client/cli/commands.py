"""The ``ksef`` commands (click). Each one is a thin shell over the SDK's resources."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ksef_client.cli import config
from ksef_client.cli.output import (
    AUTH,
    KSEF_ERROR,
    UNREACHABLE,
    USAGE,
    CLIError,
    Output,
    error_line,
    exit_code,
)
from ksef_client.identifiers import validate_nip, validate_reference_number

DOCTOR_TIMEOUT = 10.0  # doctor.DEFAULT_TIMEOUT (tests/test_cli.py checks they agree): doctor imports httpx

if TYPE_CHECKING:
    from ksef_client import doctor as doctor_module
    from ksef_client._client import KSeF
    from ksef_client.certificates import generate_private_key
    from ksef_client.cli import pending as pending_files
    from ksef_client.cli.sending import Progress, checked_rows, outcome_rows, report, send_batch, send_online
    from ksef_client.export import ExportResult
    from ksef_client.invoice_query import moment
    from ksef_client.resources.auth import AuthTokens
    from ksef_client.resources.certificates import KSeFCredentials, PendingCertificate
    from ksef_client.upo import parse_upo, save_upo
    from ksef_client.xades import AllowedIps, SigningCredentials
else:  # the SDK (and httpx) load with the first command that needs them, not for --help
    from ksef_client.cli._lazy import Lazy

    doctor_module = Lazy("ksef_client.doctor")
    KSeF = Lazy("ksef_client._client", "KSeF")
    generate_private_key = Lazy("ksef_client.certificates", "generate_private_key")
    pending_files = Lazy("ksef_client.cli.pending")
    outcome_rows, report = Lazy("ksef_client.cli.sending", "outcome_rows"), Lazy("ksef_client.cli.sending", "report")
    Progress, checked_rows = (
        Lazy("ksef_client.cli.sending", "Progress"),
        Lazy("ksef_client.cli.sending", "checked_rows"),
    )
    send_batch, send_online = (
        Lazy("ksef_client.cli.sending", "send_batch"),
        Lazy("ksef_client.cli.sending", "send_online"),
    )
    moment = Lazy("ksef_client.invoice_query", "moment")
    AuthTokens = Lazy("ksef_client.resources.auth", "AuthTokens")
    parse_upo, save_upo = Lazy("ksef_client.upo", "parse_upo"), Lazy("ksef_client.upo", "save_upo")
    SigningCredentials = Lazy("ksef_client.xades", "SigningCredentials")
    AllowedIps = Lazy("ksef_client.xades", "AllowedIps")

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
DIRECTORY = click.Path(file_okay=False, path_type=Path)


@dataclass
class State:
    """What every command gets: the profile (read when a command first asks for it: ``profile
    set`` and ``doctor`` run without one), the output mode, the credential store, and a login
    refreshed during the command, which ``main`` saves once the command has printed its result."""

    profile_name: str | None = None
    out: Output = field(default_factory=lambda: Output(False))
    _profile: config.Profile | None = field(default=None, repr=False)
    _store: config.CredentialStore | None = field(default=None, repr=False)
    refreshed: AuthTokens | None = field(default=None, repr=False)

    @property
    def profile(self) -> config.Profile:
        """The profile (``-p``, ``KSEF_PROFILE`` or ``default``); ``CLIError`` (exit 2) when no such
        profile is saved (``default`` falls back to KSeF TEST)."""
        if self._profile is None:
            try:
                self._profile = config.load_profile(self.profile_name)
            except ValueError as error:
                raise CLIError(str(error)) from error
        return self._profile

    @property
    def name(self) -> str:
        """The profile's name, whether or not it is saved (``CLIError`` for a name none can have)."""
        try:
            return config.profile_name(self.profile_name)
        except ValueError as error:
            raise CLIError(str(error)) from error

    @property
    def store(self) -> config.CredentialStore:
        """Where secrets are kept (the OS keyring is looked for on first use: not for --help)."""
        if self._store is None:
            self._store = config.CredentialStore()
        return self._store

    def anonymous_client(self) -> KSeF:
        """A client without a login (for logging in)."""
        return KSeF(**self.profile.client_options())

    @contextmanager
    def client(self, *, access_token_variable: bool = True) -> Iterator[KSeF]:
        """A client logged in with ``KSEF_ACCESS_TOKEN`` (unless ``access_token_variable`` is
        false) or this profile's saved login.

        A login KSeF no longer takes (401, a refresh refused for good) or takes only from other
        addresses (403 ``ip-not-allowed``) ends the command with exit code 3 and says to log in
        again. A token refreshed during the command is kept in ``refreshed``: ``main`` saves it
        after the command (a failed save is a warning, never the command's outcome).
        """
        direct = os.environ.get("KSEF_ACCESS_TOKEN") if access_token_variable else None
        tokens = None if direct else self.saved_login()
        if not direct and tokens is None:
            raise CLIError(
                f"not logged in to {self.profile.target} (profile '{self.profile.name}'): run `{login_command(self)}`",
                AUTH,
            )
        with KSeF(access_token=direct, **self.profile.client_options()) as ksef:
            if tokens is not None:
                ksef.auth.resume(tokens)
            try:
                yield ksef
            except Exception as error:
                refused = self._login_refused(error, saved=tokens is not None)
                if refused is None:
                    raise
                raise refused from error
            finally:  # a token refreshed before a failure is kept as well
                if tokens is not None:
                    self._keep_refreshed(ksef, tokens)

    def _login_refused(self, error: BaseException, *, saved: bool) -> CLIError | None:
        """The CLI's word for KSeF refusing the login (``error``, or the SDK error a ``CLIError``
        was raised from), naming the command that logs in again; ``None`` for any other error."""
        from ksef_client._auth import refresh_is_dead  # noqa: PLC0415 - not loaded for --help
        from ksef_client.errors import APIStatusError, AuthenticationError, PermissionDeniedError  # noqa: PLC0415

        cause = error.__cause__ if isinstance(error, CLIError) else error
        line = error_line(error).removeprefix("error: ")
        login = f"the saved login of profile '{self.profile.name}'" if saved else "KSEF_ACCESS_TOKEN"
        again = f"log in again: `{login_command(self)}`" if saved else "set a new one, or unset it for the saved login"
        refreshing = (
            isinstance(cause, APIStatusError)
            and cause.response.request.url.path.endswith("/auth/token/refresh")
            and refresh_is_dead(cause)
        )
        if isinstance(cause, AuthenticationError) or refreshing:
            why = "expired, revoked, or made at an emulator restarted since" if saved else "expired or revoked"
            return CLIError(f"{line} - KSeF no longer accepts {login} ({why}): {again}", AUTH, cause_notes=False)
        if isinstance(cause, PermissionDeniedError) and cause.reason_code == "ip-not-allowed":
            seen = f" (KSeF saw this request come from {cause.client_ip})" if cause.client_ip else ""
            return CLIError(
                f"{line} - KSeF takes {login} only from the addresses given to `auth login --allow-ip`{seen}: run "
                f"this from one of them, or {again}",
                AUTH,
                cause_notes=False,
            )
        return None

    def saved_login(self) -> AuthTokens | None:
        """This profile's saved login (``None`` without one), if it was made at the KSeF the
        profile points at now; ``CLIError`` (exit 3) otherwise: it is never sent elsewhere."""
        saved = self.store.get(self.profile.name, "login")
        if saved is None:
            return None
        tokens, ksef = config.login_from_json(saved, self.login_source)
        ksef = config.made_for(ksef, self.profile.ksef)
        self.check_ksef(ksef, "saved login", f"log in again: `{login_command(self)}`")
        return tokens

    @property
    def login_source(self) -> str:
        """The saved login, as a damaged one is named."""
        return f"the login of profile {self.profile.name!r} in {self.store.where}"

    def check_ksef(self, saved_at: str | None, what: str, remedy: str) -> None:
        """``CLIError`` (exit 3) unless the secret ``what`` was saved for the KSeF (``saved_at``)
        the profile points at now, before it is sent anywhere (cf. a pending certificate request,
        ``cert complete``)."""
        here = self.profile.ksef
        if saved_at == here:
            return
        name = self.profile.name
        if saved_at is None:
            raise CLIError(
                f"the {what} of profile '{name}' was saved by an earlier version of ksef, which did not record "
                f"the KSeF it is for, so it is sent nowhere: {remedy}",
                AUTH,
            )
        raise CLIError(
            f"the {what} of profile '{name}' is for {saved_at}, but the profile points at {here} now: it is "
            f"never sent to another KSeF than its own; {remedy} (or point the profile back at {saved_at})",
            AUTH,
        )

    def _keep_refreshed(self, ksef: KSeF, tokens: AuthTokens) -> None:
        if ksef.access_token and ksef.access_token != tokens.access_token:
            valid_until = ksef.access_token_valid_until or tokens.access_valid_until
            self.refreshed = AuthTokens(
                tokens.reference_number,
                ksef.access_token,
                valid_until,
                tokens.refresh_token,
                tokens.refresh_valid_until,
            )

    def save_refreshed(self) -> BaseException | None:
        """Save the login refreshed during the command (``client``), if any: after the command,
        so that a failure here never hides what the command did. The failure, or ``None``."""
        refreshed, self.refreshed = self.refreshed, None
        if refreshed is None:
            return None
        try:
            self.store.set(self.profile.name, "login", config.tokens_to_json(refreshed, self.profile.ksef))
        except BaseException as error:  # reported by main as a warning, after the command's result
            return error
        return None


pass_state = click.make_pass_decorator(State, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", "-p", help="Profile name (default: $KSEF_PROFILE or 'default').")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout (also taken after the command).")
@click.pass_context
def cli(ctx: click.Context, profile: str | None, as_json: bool) -> None:
    """Talk to KSeF 2.0 from the command line: log in, send, check, download.

    Exit codes: 0 ok, 1 KSeF error, 2 usage, 3 not logged in / login refused, 4 KSeF unreachable,
    5 some invoices rejected, 6 some invoices in KSeF already (440), 130 interrupted.
    """
    state = ctx.ensure_object(State)
    state.profile_name = profile
    state.out = Output(as_json)


# --- profiles ---------------------------------------------------------------------------------


@cli.group()
def profile() -> None:
    """Profiles: which KSeF (TEST, DEMO, PROD or a URL) and which context NIP."""


@profile.command("set")
@click.argument("name")
@click.option(
    "--env",
    "environment",
    type=click.Choice(["TEST", "DEMO", "PROD"], case_sensitive=False),
    help="One of the Ministry's KSeF environments (a new profile: TEST).",
)
@click.option(
    "--base-url", help="A KSeF-compatible API base URL instead (e.g. the emulator's http://127.0.0.1:8000/v2)."
)
@click.option("--nip", help="The context NIP to log in to ('' removes it).")
@click.option(
    "--insecure-http",
    is_flag=True,
    help="Take a plain http:// --base-url to another machine (an emulator in a container): invoices and "
    "tokens then travel unencrypted.",
)
@pass_state
def profile_set(
    state: State, name: str, environment: str | None, base_url: str | None, nip: str | None, insecure_http: bool
) -> None:
    """Create profile NAME, or change what is given of it (the rest is kept).

    A new profile points at KSeF TEST unless --env or --base-url says otherwise. Of an existing
    one, --base-url or --env re-points it, --nip changes its NIP; what is not given stays as saved.
    A login or KSeF token saved for the profile stays with the KSeF it was made for: pointed
    elsewhere, the profile does not send it there (log in again; pointed back, it works again)."""
    try:
        before, saved, path = config.set_profile(name, environment, base_url, nip, insecure_http=insecure_http)
    except ValueError as error:
        raise CLIError(str(error)) from error
    state.out.result(saved, message=f"profile {name!r} -> {saved.target} saved in {path}")
    if before is not None and before.ksef != saved.ksef:
        state.out.note(f"profile '{name}' pointed at {before.target}; it points at {saved.target} now")
    for note in _secrets_elsewhere(state.store, saved):
        state.out.note(note)


def _secrets_elsewhere(store: config.CredentialStore, profile: config.Profile) -> list[str]:
    """What ``profile set`` says of the profile's saved secrets that are not for where it points
    now (they stay saved, and unused, until it points back or they are replaced)."""
    found = []
    try:
        login = store.get(profile.name, "login")
        token = store.get(profile.name, "ksef-token")
        if login is not None:
            found.append(("login", config.login_from_json(login)[1], f"ksef -p {profile.name} auth login"))
        if token is not None:
            found.append(
                ("KSeF token", config.ksef_token_from_json(token)[1], f"ksef -p {profile.name} auth save-token")
            )
    except Exception:  # only a note: a damaged file or a failing keyring is for the commands using them to report
        return []
    return [
        f"the saved {what} of profile '{profile.name}' is for {ksef or 'a KSeF an earlier version did not record'}, "
        f"so it is not used at {profile.ksef}: {command}"
        for what, ksef, command in found
        if config.made_for(ksef, profile.ksef) != profile.ksef
    ]


@profile.command("list")
@pass_state
def profile_list(state: State) -> None:
    """The saved profiles."""
    profiles = config.list_profiles()
    rows = [(p.name, p.target, p.nip) for p in profiles]
    state.out.result(profiles, table=("profile", "KSeF", "NIP"), rows=rows)


# --- auth -------------------------------------------------------------------------------------


@cli.group()
def auth() -> None:
    """Log in and out. The login's tokens are kept in the OS keyring (or a 0600 file)."""


def login_command(state: State) -> str:
    """The login command for this profile, as hints print it."""
    return f"ksef -p {state.profile.name} auth login"


def _where_options(profile: config.Profile) -> str:
    """The ``profile set`` options that keep where a profile points."""
    return f"--env {profile.environment}" + (f" --base-url {profile.base_url}" if profile.base_url else "")


def _check_pem_files(state: State, cert: Path, key: Path) -> None:
    """Name the file that is not what its option expects (the usual mistake: the two swapped)."""
    cert_pem, key_pem = cert.read_bytes(), key.read_bytes()
    if b"PRIVATE KEY-----" in cert_pem and b"CERTIFICATE-----" in key_pem:
        raise CLIError(
            f"--cert {cert} holds a private key and --key {key} a certificate: swapped? "
            f"Try: {login_command(state)} --cert {key} --key {cert}"
        )
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        found = "a private key" if b"PRIVATE KEY-----" in cert_pem else "no PEM certificate"
        raise CLIError(f"--cert {cert}: expected a PEM certificate (-----BEGIN CERTIFICATE-----), found {found}")
    if b"PRIVATE KEY-----" not in key_pem:
        found = "a certificate" if b"CERTIFICATE-----" in key_pem else "no PEM private key"
        raise CLIError(f"--key {key}: expected a PEM private key (-----BEGIN ... PRIVATE KEY-----), found {found}")


def _ask_secret(label: str, instead: str, *, confirm: bool = False) -> str:
    """A secret asked for without echo (``confirm``: typed twice). Without a terminal (a pipe, a
    script) it is read as one line of stdin, as ``--token-stdin`` reads one (no echo to hide, and
    no "Password input may be echoed" warning), after its label on stderr all the same: Git Bash
    (mintty) and IDE consoles are no terminal to Python while a person types there, and would
    seem to hang; input that ends before it (a script, cron, CI) is a usage error saying what to
    do ``instead``; click reports it as an abort, which read as Ctrl-C ("interrupted", exit 130)."""
    if sys.stdin is None or not sys.stdin.isatty():
        click.echo(f"{label}: ", err=True, nl=False)  # stdout may be --json or a pipe: never there
        line = sys.stdin.readline() if sys.stdin is not None else ""
        click.echo(err=True)  # what follows on stderr starts a line of its own (piped input echoes nothing)
        if not line:
            raise CLIError(f"{label}: none given (no terminal to ask on, or its input ended): {instead}")
        return line.rstrip("\r\n")
    return str(click.prompt(label, hide_input=True, confirmation_prompt=confirm))  # Ctrl-C: click.Abort


def _credentials(state: State, cert: Path | None, key: Path | None, pkcs12: Path | None) -> SigningCredentials:
    password = os.environ.get("KSEF_KEY_PASSWORD")
    if pkcs12:
        return _pkcs12_credentials(pkcs12, password)
    assert cert is not None and key is not None  # _check_login_options
    _check_pem_files(state, cert, key)
    try:
        try:
            return SigningCredentials.from_pem(cert, key, password)
        except TypeError:  # an encrypted key and no password in the environment: ask, never echo
            return SigningCredentials.from_pem(cert, key, _ask_secret("key password", "set KSEF_KEY_PASSWORD"))
    except ValueError as error:
        raise CLIError(f"--cert {cert} / --key {key}: {error}") from error


def _pkcs12_credentials(pkcs12: Path, password: str | None) -> SigningCredentials:
    """A .p12 opened with $KSEF_KEY_PASSWORD, or, without it, as it is (a file with no password)
    or else with a password asked for without echo, as for an encrypted --key."""
    try:
        try:
            return SigningCredentials.from_pkcs12(pkcs12, password)
        except ValueError:
            if password is not None:
                raise
        return SigningCredentials.from_pkcs12(pkcs12, _ask_secret(f"password of {pkcs12}", "set KSEF_KEY_PASSWORD"))
    except ValueError as error:
        given = "the password of KSEF_KEY_PASSWORD" if password is not None else "the password typed"
        raise CLIError(f"--pkcs12 {pkcs12}: {error} (with {given})") from error


def _ksef_token(state: State, from_stdin: bool) -> str:
    """The KSeF token to log in with: from stdin, ``KSEF_TOKEN``, or the one saved for this profile
    if it was saved for the KSeF the profile points at now (it is encrypted with that server's
    key, which could decrypt it: never another server's)."""
    if from_stdin:
        return sys.stdin.readline().strip()
    save = f"ksef -p {state.profile.name} auth save-token"
    token = os.environ.get("KSEF_TOKEN", "").strip()  # as --token-stdin and save-token take it: no CR, no spaces
    if not token:
        saved = state.store.get(state.profile.name, "ksef-token")
        if saved:
            token, ksef = config.ksef_token_from_json(saved)
            ksef = config.made_for(ksef, state.profile.ksef)
            state.check_ksef(ksef, "saved KSeF token", f"save the token for {state.profile.ksef}: `{save}`")
    if not token:
        raise CLIError(f"no KSeF token: set KSEF_TOKEN, pipe it with --token-stdin, or run `{save}`", AUTH)
    return token


def _check_login_options(token_stdin: bool, cert: Path | None, key: Path | None, pkcs12: Path | None) -> None:
    """A usage error for options of two ways of logging in at once (one would be ignored), or
    half of one (``--cert`` without ``--key``)."""
    if token_stdin and (cert or key or pkcs12):
        raise CLIError("--token-stdin logs in with a KSeF token, --cert/--key/--pkcs12 with a certificate: give one")
    if pkcs12 and (cert or key):
        raise CLIError("--pkcs12 holds the certificate and its key: give it alone, or --cert with --key (PEM files)")
    if bool(cert) != bool(key):
        raise CLIError("--cert needs --key (PEM files), and --key needs --cert; or use --pkcs12")


# ``--allow-ip client``: the address KSeF sees this computer connect from (the challenge's clientIp).
CLIENT_IP = "client"


def _allowed_ips(values: tuple[str, ...]) -> AllowedIps | None:
    """The ``--allow-ip`` values as a policy, each by its form: ``a-b`` a range, ``a/n`` a network,
    ``client`` this computer's address as KSeF sees it, else an address; ``None`` without any."""
    if not values:
        return None
    kinds: dict[str, list[str]] = {"addresses": [], "ranges": [], "masks": []}
    client = False
    for value in values:
        if value.strip().lower() == CLIENT_IP:
            client = True
        elif "/" in value:
            kinds["masks"].append(value)
        elif "-" in value or "\u2013" in value:  # an en dash, as in the spec's own example of a range
            kinds["ranges"].append(value)
        else:
            kinds["addresses"].append(value)
    try:
        return AllowedIps(**kinds, include_client_ip=client)
    except ValueError as error:
        raise CLIError(f"--allow-ip: {str(error).removeprefix('allowed_ips').lstrip(': ')}", USAGE) from error


@auth.command("login")
@click.option("--nip", help="Context NIP (default: the profile's).")
@click.option("--token-stdin", is_flag=True, help="Read the KSeF token from stdin (else $KSEF_TOKEN or saved).")
@click.option("--cert", type=FILE, help="Certificate (PEM) for a XAdES login.")
@click.option("--key", type=FILE, help="Its private key (PEM; password from $KSEF_KEY_PASSWORD or a prompt).")
@click.option("--pkcs12", type=FILE, help="Certificate and key in one .p12/.pfx file.")
@click.option(
    "--by-fingerprint",
    is_flag=True,
    help="Certificate login as the certificate's SHA-256 fingerprint (SubjectIdentifierType "
    "certificateFingerprint: a certificate naming no NIP or PESEL, granted rights by its fingerprint).",
)
@click.option(
    "--allow-ip",
    "allow_ip",
    multiple=True,
    metavar="IP",
    help="Let KSeF accept the login's tokens only from here: an IPv4 address, a range a.b.c.d-e.f.g.h, "
    "a network a.b.c.d/prefix, or 'client' (this computer's address as KSeF sees it). Repeatable; "
    "up to 10 of each kind.",
)
@pass_state
def auth_login(
    state: State,
    nip: str | None,
    token_stdin: bool,
    cert: Path | None,
    key: Path | None,
    pkcs12: Path | None,
    by_fingerprint: bool,
    allow_ip: tuple[str, ...],
) -> None:
    """Log in with a KSeF token or a certificate; the tokens are saved for later commands.

    One way at a time: --cert with --key, or --pkcs12, or a KSeF token (--token-stdin, $KSEF_TOKEN
    or the saved one). With --allow-ip KSeF refuses the tokens from any other address (403
    ip-not-allowed)."""
    _check_login_options(token_stdin, cert, key, pkcs12)
    if not (nip or state.profile.nip):
        name = state.profile.name
        raise CLIError(
            f"no NIP to log in to: profile '{name}' has none. Pass it: {login_command(state)} --nip NIP ..., "
            f"or save it in the profile: ksef profile set {name} {_where_options(state.profile)} --nip NIP"
        )
    context_nip = validate_nip(
        nip or state.profile.nip or "", "--nip" if nip else f"profile '{state.profile.name}' nip"
    )
    if by_fingerprint and not (cert or key or pkcs12):
        raise CLIError("--by-fingerprint is for a certificate login: give --cert and --key, or --pkcs12", USAGE)
    subject = "certificateFingerprint" if by_fingerprint else "certificateSubject"
    allowed_ips = _allowed_ips(allow_ip)
    with state.anonymous_client() as ksef:
        if cert or key or pkcs12:
            credentials = _credentials(state, cert, key, pkcs12)
            tokens = ksef.auth.login_with_certificate(
                credentials, context_nip=context_nip, subject_identifier_type=subject, allowed_ips=allowed_ips
            )
        else:
            token = _ksef_token(state, token_stdin)
            tokens = ksef.auth.login_with_token(token, context_nip=context_nip, allowed_ips=allowed_ips)
    state.store.set(state.profile.name, "login", config.tokens_to_json(tokens, state.profile.ksef))
    summary = {
        "profile": state.profile.name,
        "ksef": state.profile.target,
        "nip": context_nip,
        "reference_number": tokens.reference_number,
        "access_valid_until": tokens.access_valid_until,
        "refresh_valid_until": tokens.refresh_valid_until,
        "stored_in": state.store.where,
        "allowed_ips": list(allow_ip),  # as given: 'client' is the address KSeF saw at this login
    }
    only_from = f"; KSeF takes them only from {', '.join(allow_ip)}" if allow_ip else ""
    state.out.result(
        summary,
        message=f"logged in to {state.profile.target} for NIP {context_nip} "
        f"(refresh token valid until {tokens.refresh_valid_until:%Y-%m-%d %H:%M}); "
        f"tokens kept in {state.store.where}{only_from}",
    )


@auth.command("save-token")
@pass_state
def auth_save_token(state: State) -> None:
    """Save a KSeF token for this profile (asked for without echo)."""
    token = _ask_secret("KSeF token", "pipe it in as one line").strip()
    if not token:
        raise CLIError("empty token")
    state.store.set(state.profile.name, "ksef-token", config.ksef_token_to_json(token, state.profile.ksef))
    state.out.result(
        {"stored_in": state.store.where, "ksef": state.profile.ksef},
        message=f"KSeF token for {state.profile.ksef} saved in {state.store.where}",
    )


@auth.command("status")
@click.option(
    "--check",
    is_flag=True,
    help="Ask KSeF whether it still accepts the saved login (one request: the list of active logins; the "
    "login is refreshed if its access token has expired).",
)
@pass_state
def auth_status(state: State, check: bool) -> None:
    """Whether this profile has a saved login, and until when it can be refreshed.

    Without --check only the saved dates are read: KSeF may have ended the login before them
    (revoked elsewhere, an emulator restarted), which --check finds out."""
    saved = state.store.get(state.profile.name, "login")
    base = {"profile": state.profile.name, "ksef": state.profile.target}
    if saved is None:
        # The same JSON shape as a login (scripts read stdout), then exit code 3.
        state.out.result({**base, "logged_in": False, "usable": False})
        raise CLIError(f"not logged in to {state.profile.target}: run `{login_command(state)}`", AUTH)
    tokens, ksef = config.login_from_json(saved, state.login_source)
    ksef = config.made_for(ksef, state.profile.ksef)
    here = ksef == state.profile.ksef
    usable = here and tokens.refresh_valid_until > dt.datetime.now(dt.UTC)
    data = {
        **base,
        "logged_in": True,  # a login is saved; whether KSeF still accepts it: checked_with_ksef, accepted_by_ksef
        "login_ksef": ksef,  # where the login was made (null: saved by an earlier version, not usable here)
        "reference_number": tokens.reference_number,
        "refresh_valid_until": tokens.refresh_valid_until,
        "usable": usable,
        "checked_with_ksef": False,
        "accepted_by_ksef": None,
    }
    if not here:
        made_at = ksef or "a KSeF an earlier version did not record"
        state.out.result(data, message=f"a login for {made_at} is saved, not one for {state.profile.ksef}")
        state.check_ksef(ksef, "saved login", f"log in again: `{login_command(state)}`")
    until = f"refresh token valid until {tokens.refresh_valid_until:%Y-%m-%d %H:%M}"
    if not usable:
        state.out.result(data, message=f"login expired: {state.profile.target}, {until}")
        raise CLIError(f"the saved login has expired: run `{login_command(state)}`", AUTH)
    if not check:
        state.out.result(
            data,
            message=f"login saved for {state.profile.target}, {until} (not checked with KSeF: "
            f"`ksef -p {state.profile.name} auth status --check` asks it)",
        )
        return
    try:
        with state.client(access_token_variable=False) as client:
            next(iter(client.auth.sessions(page_size=10).pages()), None)
    except CLIError as error:
        if error.code != AUTH:
            raise
        state.out.result({**data, "usable": False, "checked_with_ksef": True, "accepted_by_ksef": False})
        raise
    state.out.result(
        {**data, "checked_with_ksef": True, "accepted_by_ksef": True},
        message=f"logged in to {state.profile.target} (KSeF accepts the saved login), {until}",
    )


# KSeF's answers to a revoke of a login it no longer accepts: the access token expired and the
# refresh token did too (401), or the session was revoked elsewhere (21301 from the refresh).
GONE_AT_KSEF = 21301


def _already_logged_out(error: Exception) -> bool:
    from ksef_client.errors import APIStatusError  # noqa: PLC0415 - not loaded for --help

    return isinstance(error, APIStatusError) and (error.status_code == 401 or GONE_AT_KSEF in error.codes)


@auth.command("logout")
@pass_state
def auth_logout(state: State) -> None:
    """Revoke the saved login at KSeF and forget it.

    The saved login is forgotten in any case. A login KSeF no longer accepts (revoked elsewhere,
    refresh token expired) counts as logged out already; when KSeF cannot be told for another
    reason the command fails (its refresh token may still work at KSeF until it expires). It is
    revoked at the KSeF it was made at, also when the profile points elsewhere now; a login saved
    by an earlier version, which did not record that, is forgotten without being sent anywhere.
    """
    saved = state.store.get(state.profile.name, "login")
    if saved is None:
        state.out.result({"logged_out": False}, message="not logged in")
        return
    tokens, made_at = config.login_from_json(saved, state.login_source)
    made_at = config.made_for(made_at, state.profile.ksef)
    if made_at is None:  # sent nowhere (config.py): forgotten, KSeF ends it by itself
        state.store.delete(state.profile.name, "login")
        until = f"{tokens.refresh_valid_until:%Y-%m-%d %H:%M}"
        state.out.result(
            {"logged_out": True, "already_logged_out": False, "revoked": False},
            message=f"logged out here; not revoked at KSeF: the login was saved by an earlier version of ksef, "
            f"which did not record the KSeF it is for, so it is sent nowhere (its refresh token ends by {until})",
        )
        return
    try:
        with KSeF(**config.client_options_of(made_at)) as ksef:  # where it was made, whatever the profile says now
            ksef.auth.resume(tokens)
            ksef.auth.revoke_current_session()
        already = False
    except Exception as error:
        if not _already_logged_out(error):
            line = error_line(error).removeprefix("error: ")
            removed = f"the saved login of profile {state.profile.name!r} was removed all the same"
            raise CLIError(f"{line} - {removed}", exit_code(error)) from error
        already = True
    finally:
        state.store.delete(state.profile.name, "login")
    message = "logged out" + (" (KSeF had already ended this login)" if already else "")
    if made_at != state.profile.ksef:
        message += f" of {made_at}, where the login was made (the profile points at {state.profile.ksef} now)"
    state.out.result({"logged_out": True, "already_logged_out": already, "revoked": not already}, message=message)


# --- sessions ---------------------------------------------------------------------------------


@cli.group()
def sessions() -> None:
    """Sessions of the logged-in context."""


@sessions.command("list")
@click.option("--type", "session_type", type=click.Choice(["Online", "Batch"]), default="Online", show_default=True)
@click.option(
    "--status", "statuses", multiple=True, type=click.Choice(["InProgress", "Succeeded", "Failed", "Cancelled"])
)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@pass_state
def sessions_list(state: State, session_type: str, statuses: tuple[str, ...], limit: int) -> None:
    """The newest sessions."""
    with state.client() as ksef:
        found = []
        for item in ksef.sessions.list(session_type, statuses=statuses or None, page_size=max(10, min(limit, 1000))):
            found.append(item)
            if len(found) >= limit:
                break
    rows = [
        (
            s.reference_number,
            s.date_created,
            s.status.code,
            s.status.description,
            s.total_invoice_count,
            s.successful_invoice_count,
            s.failed_invoice_count,
        )
        for s in found
    ]
    state.out.result(found, table=("reference", "created", "code", "status", "invoices", "ok", "failed"), rows=rows)


@sessions.command("status")
@click.argument("reference")
@pass_state
def sessions_status(state: State, reference: str) -> None:
    """One session's status."""
    validate_reference_number(reference, "REFERENCE")
    with state.client() as ksef:
        status = ksef.sessions.get(reference)
    counts = f"{status.successful_invoice_count or 0} ok, {status.failed_invoice_count or 0} failed"
    state.out.result(status, message=f"{reference}: {status.status.code} {status.status.description} ({counts})")
    if status.status.code == SESSION_OPEN:
        state.out.note(_open_session_note(state, reference, status.valid_until))


# A session's status code while it is open (SessionStatusResponse: "100 | Sesja interaktywna otwarta",
# "100 | Sesja wsadowa rozpoczęta").
SESSION_OPEN = 100
# How long `send` and `sessions wait` wait for KSeF to process a session, by default (seconds).
PROCESSING_WAIT = 3600.0
# A session's kind by the two letters after its date in its reference number (every session
# reference in the spec and the Ministry's docs: 20250625-SO-..., 20250626-SB-...).
SESSION_KINDS = {"SO": "online", "SB": "batch"}
# The pauses (seconds) between the further reads of a session `sessions wait` finds open: right after
# its close KSeF may still read 100 for a moment (a `send --no-wait` just before).
OPEN_REREADS = (1.0, 2.0)


def _processing_timeout(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--timeout",
        type=click.FloatRange(0, min_open=True),
        default=PROCESSING_WAIT,
        show_default=True,
        help="Seconds to wait for KSeF to process the session (then exit 4; `ksef sessions wait REF` waits again).",
    )(command)


def session_kind(reference: str) -> str | None:
    """``"online"`` or ``"batch"``, by session ``reference``'s kind letters (``-SO-``, ``-SB-``);
    ``None`` for any other."""
    return SESSION_KINDS.get(reference[9:11]) if reference[8:9] == "-" else None


def _open_session_note(state: State, reference: str, valid_until: Any = None) -> str:
    """What an open session (100) means, by its kind: an online one KSeF closes by itself at its
    ``validUntil`` and processes then; a batch one it never processes unless closed (every part
    uploaded): it cancels it at its ``validUntil``, none of its invoices in KSeF."""
    ksef, kind = f"ksef -p {state.profile.name}", session_kind(reference)
    until = f" {valid_until.isoformat(timespec='seconds')}" if isinstance(valid_until, dt.datetime) else ""
    online = (
        f"online session {reference} is open: KSeF processes its invoices and issues its UPO only once it is "
        f"closed (by itself at its validUntil{until}); `{ksef} sessions close {reference}` closes it now"
    )
    batch = (
        f"batch session {reference} is open: KSeF processes none of it until it is closed, and does not close "
        f"it by itself: unless closed, it is cancelled at its validUntil{until} and none of its invoices reach "
        f"KSeF; `{ksef} sessions close {reference} --batch` closes it (with every part of its package uploaded; "
        "a part missing: KSeF refuses the close, 21205: send the files again)"
    )
    if kind is not None:
        return online if kind == "online" else batch
    return f"if it is an {online}; if it is a {batch}"


@sessions.command("close")
@click.argument("reference")
@click.option("--batch", is_flag=True, help="A batch session (read from REFERENCE: -SB-; needed for no other).")
@pass_state
def sessions_close(state: State, reference: str, batch: bool) -> None:
    """Close session REFERENCE, left open by a `ksef send` whose close failed or was interrupted:
    KSeF then processes its invoices and issues the UPO (`ksef sessions wait REFERENCE`).

    Its kind comes from REFERENCE (-SO- online, -SB- batch). A session no longer open is left as it
    is (exit 0). KSeF closes a batch session only with every part of its package uploaded (21205
    otherwise: it cancels it at its validUntil, none of its invoices in KSeF)."""
    from ksef_client._flows import run  # noqa: PLC0415 - not loaded for --help
    from ksef_client._generated.api.batch_session import close_batch_session  # noqa: PLC0415
    from ksef_client._generated.api.online_session import close_online_session  # noqa: PLC0415
    from ksef_client.errors import KSeFError  # noqa: PLC0415
    from ksef_client.sending import close_flow  # noqa: PLC0415

    validate_reference_number(reference, "REFERENCE")
    kind = session_kind(reference)
    if kind == "online" and batch:
        raise CLIError(
            f"{reference} is an online session (-SO- in its reference number), not a batch one: "
            f"`ksef -p {state.profile.name} sessions close {reference}` closes it (without --batch)"
        )
    batch = batch or kind == "batch"
    with state.client() as ksef:
        before = ksef.sessions.get(reference).status
        if before.code == SESSION_OPEN:
            try:
                # sent_before: a close KSeF refuses as not allowed (21180) is settled by the session's status
                run(close_flow(reference, close_batch_session if batch else close_online_session, True), ksef)
            except KSeFError as error:
                if note := _close_failed_note(state, reference, batch, kind, error):
                    error.add_note(note)
                raise
    wait = f"`ksef -p {state.profile.name} sessions wait {reference}` shows its outcome"
    if before.code != SESSION_OPEN:
        message = f"session {reference} is not open ({before.code} {before.description}): nothing to close; {wait}"
    else:
        message = f"{'batch' if batch else 'online'} session {reference} closed: KSeF processes it; {wait}"
    state.out.result(
        {"reference_number": reference, "was_open": before.code == SESSION_OPEN, "status_before": before},
        message=message,
    )


# KSeF's answers to a close (400): no such session of that kind (an online close of a batch session
# answers this), the session's status allows no close, a batch part not uploaded.
NO_SUCH_SESSION, NOT_CLOSABLE, PARTS_MISSING = 21173, 21180, 21205


def _close_failed_note(state: State, reference: str, batch: bool, kind: str | None, error: Exception) -> str:
    """What a close KSeF refused means for session ``reference`` (``""``: nothing to add)."""
    codes = getattr(error, "codes", [])
    ksef = f"ksef -p {state.profile.name}"
    if batch and PARTS_MISSING in codes:
        return (
            f"a part of batch session {reference}'s package was not uploaded: KSeF cancels the session at its "
            "validUntil and holds none of its invoices; send the files again (a new `ksef send --batch`)"
        )
    if kind is None and not batch and NO_SUCH_SESSION in codes:
        return f"if {reference} is a batch session: `{ksef} sessions close {reference} --batch`"
    if kind is None and batch and NOT_CLOSABLE in codes:
        return f"if {reference} is an online session: `{ksef} sessions close {reference}` (without --batch)"
    return ""


@sessions.command("wait")
@click.argument("reference")
@_processing_timeout
@pass_state
def sessions_wait(state: State, reference: str, timeout: float) -> None:
    """Wait for KSeF to process session REFERENCE (one `ksef send` sent, or `--no-wait` left),
    then print each invoice's KSeF number or rejection, with `ksef send`'s exit codes (5: some
    rejected; 6: some in KSeF already). A session still open (100) is not waited for: KSeF
    processes it only once it is closed (`ksef sessions close REFERENCE`); exit 2."""
    validate_reference_number(reference, "REFERENCE")
    with state.client() as ksef:
        try:
            status = ksef.sessions.get(reference)
            for pause in OPEN_REREADS:  # a close just made may still read 100 for a moment
                if status.status.code != SESSION_OPEN:
                    break
                time.sleep(pause)
                status = ksef.sessions.get(reference)
            if status.status.code != SESSION_OPEN:
                with state.out.progress("KSeF processing", None):
                    status = ksef.sessions.wait(reference, timeout=timeout)
        except Exception as error:
            error.add_note(_still_processing(state, reference, error))
            raise
        if status.status.code == SESSION_OPEN:
            still_open = CLIError(
                f"session {reference} is open ({status.status.code} {status.status.description}): nothing to wait "
                "for, KSeF processes a session only once it is closed; close it first, then wait"
            )
            still_open.add_note(_open_session_note(state, reference, status.valid_until))
            still_open.add_note(f"then `ksef -p {state.profile.name} sessions wait {reference}` shows its outcome")
            raise still_open
        try:  # the listing, then the originals of its 440s (a 401, a connection down: raised)
            outcomes = ksef.sessions.outcomes(reference)
            named = [(o.invoice_number or o.reference_number or "", o) for o in outcomes]
            rows = checked_rows(ksef, state.out, named, f"ksef -p {state.profile.name}")
        except Exception as error:
            error.add_note(_still_processing(state, reference, error))
            raise
    report(state.out, reference, status, rows, name="invoice")


def _still_processing(state: State, reference: str, error: BaseException) -> str:
    """The note on a wait for session ``reference`` that ended early: where its invoices are."""
    again = f"`ksef -p {state.profile.name} sessions wait {reference}` waits again"
    from ksef_client.errors import PollTimeoutError  # noqa: PLC0415 - not loaded for --help

    if isinstance(error, PollTimeoutError):
        return f"KSeF is still processing session {reference}: its invoices are in KSeF's hands; {again}"
    return f"the outcome of session {reference} was not read: {again}"


@sessions.command("invoices")
@click.argument("reference")
@click.option("--failed", is_flag=True, help="Only the rejected invoices.")
@pass_state
def sessions_invoices(state: State, reference: str, failed: bool) -> None:
    """The invoices of a session, with their KSeF numbers or rejection reasons."""
    validate_reference_number(reference, "REFERENCE")
    with state.client() as ksef:
        invoices = list(ksef.sessions.invoices(reference, failed=failed, page_size=1000))
    rows = [
        (
            i.ordinal_number,
            i.invoice_number,
            i.ksef_number,
            i.status.code,
            "; ".join([i.status.description, *(i.status.details or [])]),
        )
        for i in invoices
    ]
    state.out.result(invoices, table=("#", "invoice", "KSeF number", "code", "status"), rows=rows)


# --- UPO --------------------------------------------------------------------------------------


@cli.group()
def upo() -> None:
    """UPO documents (official receipts), hash-checked and parsed."""


@upo.command("get")
@click.argument("reference")
@click.option("--invoice", "ksef_number", help="One invoice's UPO, by its KSeF number (default: the session's).")
@click.option("--out", "directory", type=DIRECTORY, default=Path(), show_default=True)
@pass_state
def upo_get(state: State, reference: str, ksef_number: str | None, directory: Path) -> None:
    """Save the UPO of session REFERENCE (or of one invoice) and summarise it."""
    validate_reference_number(reference, "REFERENCE")
    directory.mkdir(parents=True, exist_ok=True)
    with state.client() as ksef:
        if ksef_number:
            paths = [save_upo(ksef.upo.get_invoice_upo(reference, ksef_number=ksef_number).xml, directory, ksef_number)]
        else:
            paths = ksef.upo.save_session_upo(reference, directory)
    documents = [d for path in paths for d in parse_upo(path.read_bytes()).documents]
    data = {"files": paths, "documents": [vars(d) for d in documents]}
    rows = [(d.ksef_number, d.invoice_number, d.issue_date, d.numbered_at) for d in documents]
    state.out.result(
        data,
        message=f"{len(paths)} UPO file(s), {len(documents)} invoice(s): " + ", ".join(str(p) for p in paths),
        table=("KSeF number", "invoice", "issued", "numbered"),
        rows=rows,
    )


# --- sending ----------------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True, type=FILE)
@click.option("--batch", is_flag=True, help="One batch session (zip, parts, parallel upload) instead of online.")
@click.option("--form", default="FA(3)", show_default=True)
@click.option("--offline", is_flag=True, help="Invoices issued in offline mode.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for KSeF to process them.")
@_processing_timeout
@pass_state
def send(
    state: State, files: tuple[Path, ...], batch: bool, form: str, offline: bool, wait: bool, timeout: float
) -> None:
    """Send invoice FILES; with --wait, print each one's KSeF number or rejection.

    Whatever stops it after the session was opened (an error, Ctrl-C, --timeout) is followed by
    notes: the session, which files KSeF has and which not, and what to run next (`ksef sessions
    wait|status|close REF`). Exit 5: some rejected (a 440 for another invoice with the number too);
    6: none rejected, some in KSeF already (440 for the very same file, sent before)."""
    progress = Progress(files, batch, command=f"ksef -p {state.name}")
    try:
        with state.client() as ksef:
            if batch:
                reference, sent = send_batch(ksef, state.out, files, form, offline, progress), None
            else:
                reference, sent = send_online(ksef, state.out, files, form, offline, progress)
            if not wait:
                state.out.result(
                    {"reference_number": reference, "files": files},
                    message=f"session {reference}: {len(files)} invoice(s) sent; "
                    f"`ksef -p {state.name} sessions wait {reference}` shows their outcome",
                )
                return
            progress.waiting = True
            with state.out.progress("KSeF processing", None):
                status = ksef.sessions.wait(reference, timeout=timeout)
            listing = list(ksef.sessions.invoices(reference, page_size=1000))
            rows = outcome_rows(ksef, state.out, files, listing, sent, reference, f"ksef -p {state.name}")
    except BaseException as error:
        for note in progress.notes():
            error.add_note(note)
        raise
    report(state.out, reference, status, rows)


# --- downloading ------------------------------------------------------------------------------


@cli.group()
def invoices() -> None:
    """Received and issued invoices."""


def _date(value: str, name: str) -> dt.date | dt.datetime:
    """A date (a day in Poland) or a date-time; one without an offset is Polish time."""
    try:
        if len(value) == len("2026-11-01"):
            return dt.date.fromisoformat(value)
        moment = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise CLIError(f"{name}: {value!r} is not an ISO date (2026-11-01 or 2026-11-01T08:00+01:00)") from error
    if moment.tzinfo is None:
        from zoneinfo import ZoneInfo  # noqa: PLC0415

        moment = moment.replace(tzinfo=ZoneInfo("Europe/Warsaw"))
    return moment


def _date_range(date_from: str, date_to: str | None) -> tuple[dt.date | dt.datetime, dt.date | dt.datetime | None]:
    start, end = _date(date_from, "--from"), _date(date_to, "--to") if date_to else None
    if end is not None and moment(end, "--to", end_of_day=True) < moment(start, "--from"):
        raise CLIError("--to is before --from", USAGE)
    return start, end


def _query_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--from``, ``--to``, ``--subject``, ``--date-type``: the metadata filters of list and download."""
    for option in reversed(
        [
            click.option(
                "--from", "date_from", required=True, help="Start: a date (a day in Poland) or an ISO date-time."
            ),
            click.option("--to", "date_to", help="End (default: now); a date includes that whole day."),
            click.option(
                "--subject",
                type=click.Choice(["Subject1", "Subject2", "Subject3", "SubjectAuthorized"]),
                default="Subject2",
                show_default=True,
                help="Subject1: issued by the context; Subject2: received.",
            ),
            click.option(
                "--date-type",
                type=click.Choice(["Issue", "Invoicing", "PermanentStorage"]),
                default="PermanentStorage",
                show_default=True,
            ),
        ]
    ):
        command = option(command)
    return command


@invoices.command("list")
@_query_options
@click.option("--limit", type=click.IntRange(0), default=100, show_default=True, help="At most this many (0: all).")
@click.option("--page-size", type=click.IntRange(10, 250), default=100, show_default=True)
@pass_state
def invoices_list(
    state: State, date_from: str, date_to: str | None, subject: str, date_type: str, limit: int, page_size: int
) -> None:
    """Invoice metadata of a date range (a metadata query: nothing is downloaded), oldest first,
    read page by page."""
    start, end = _date_range(date_from, date_to)
    found: list[Any] = []
    more = ""  # stopped at --limit: "are" (records left in the page), "may be" (pages left: not read)
    with state.client() as ksef:
        pager = ksef.invoices.query(subject, date_from=start, date_to=end, date_type=date_type, page_size=page_size)
        for page in pager.pages():
            found += page.items
            if limit and len(found) >= limit:
                more = "are" if len(found) > limit else "may be" if page.next_cursor is not None else ""
                break
    del found[limit or len(found) :]
    rows = [
        (r.ksef_number, r.invoice_number, r.issue_date, r.seller.nip, r.gross_amount, r.currency, r.invoice_type)
        for r in found
    ]
    stopped = f"stopped at --limit {limit}: there {more} more (raise --limit, or --limit 0 for all)"
    state.out.result(
        found,
        table=("KSeF number", "invoice", "issued", "seller NIP", "gross", "currency", "type"),
        rows=rows,
        message=f"{len(found)} invoice(s)" + (f" ({stopped})" if more else ""),
    )
    if more and state.out.as_json:  # the JSON is the list of records: the note goes to stderr
        state.out.note(f"{len(found)} invoice(s) listed, {stopped}")


@invoices.command("download")
@click.argument("directory", type=DIRECTORY)
@_query_options
@pass_state
def invoices_download(
    state: State, directory: Path, date_from: str, date_to: str | None, subject: str, date_type: str
) -> None:
    """Export the invoices of a date range into DIRECTORY (decrypted, unpacked, hash-checked)."""
    start, end = _date_range(date_from, date_to)
    began = dt.datetime.now(dt.UTC)
    try:
        with state.client() as ksef, state.out.progress("export", None):
            result = ksef.invoices.export(directory, subject, date_from=start, date_to=end, date_type=date_type)
    except BaseException as error:
        partial = getattr(error, "partial", None)
        for note in _saved_before(directory, date_from, date_type, (start, end), began, partial, error):
            error.add_note(note)
        raise
    go_on_from = _go_on_from(result, date_type)
    stuck = result.goes_no_further
    data = {
        "reference_number": result.reference_number,
        "directory": directory,
        "files": result.files,
        "is_truncated": result.is_truncated,
        "go_on_from": None if stuck else go_on_from,
        "goes_no_further": stuck,
    }
    note = ""
    if stuck:
        # KSeF's rule is to go on from the package's last date; when every invoice of the package
        # has that date, that gives the same package again (a day of Issue dates, a batch
        # session's one Invoicing date).
        other = "PermanentStorage" if date_type != "PermanentStorage" else "Issue or Invoicing"
        note = (
            f" (truncated: more invoices dated {go_on_from} than one export carries; going on from that date "
            f"would fetch the same ones: export by --date-type {other}, whose dates differ)"
        )
    elif result.is_truncated:
        note = f" (truncated: run again with --from {go_on_from})" if go_on_from else " (truncated)"
    state.out.result(data, message=f"{len(result.files)} invoice(s) saved in {directory}{note}")


def _saved_before(
    directory: Path,
    given_from: str,
    date_type: str,
    dates: tuple[dt.date | dt.datetime, dt.date | dt.datetime | None],
    began: dt.datetime,
    partial: object,
    error: BaseException,
) -> list[str]:
    """The notes on a download that stopped (an error, Ctrl-C): the files it saved (the SDK's
    ``error.partial``) and the ``--from`` that goes on without exporting them again.

    A range over 100 days is exported in windows of 100 days from ``--from`` (no HWM restriction:
    each window starts where the one before ended), and ``partial.reference_numbers`` are the
    windows saved whole, so the next window starts ``100 days x windows`` after ``--from`` (for a
    range without ``--to``, at most at the moment the download began: a window never ends after
    its own now). A package whose files could not all be moved in is in ``partial`` too, without
    the rest of its invoices: its window starts again."""
    from ksef_client.export import ExportResult  # noqa: PLC0415 - not loaded for --help
    from ksef_client.invoice_query import window_end  # noqa: PLC0415

    rerun = "run the same command again"
    if not isinstance(partial, ExportResult) or not partial.files:
        return [f"no invoice was saved in {directory} before it stopped: {rerun}"]
    windows = len(partial.reference_numbers) - (1 if _stopped_while_moving(error) else 0)
    # As the SDK's filters carry them (ISO text read back: a fixed offset, so 100 days are 2400 hours).
    start, end = dates
    first = dt.datetime.fromisoformat(moment(start, "--from").isoformat())
    last = None if end is None else dt.datetime.fromisoformat(moment(end, "--to", end_of_day=True).isoformat())
    resume = first
    for _ in range(windows):
        window_to = window_end(resume, last, began)
        if window_to is None:  # the last window, open to now: nothing whole to skip past it
            break
        resume = window_to
    names = ", ".join(path.name for path in partial.files[:10])
    more = f" and {len(partial.files) - 10} more" if len(partial.files) > 10 else ""
    saved = f"{len(partial.files)} invoice file(s) were saved in {directory} before it stopped ({names}{more})"
    if resume == first:
        return [f"{saved}, not every invoice of any stretch of the range: {rerun} (the files are replaced)"]
    return [
        f"{saved}: every invoice whose {date_type} date is up to {resume.isoformat()}; go on from there without "
        f"exporting them again: the same command with `--from {resume.isoformat()}` in place of --from {given_from}"
    ]


def _stopped_while_moving(error: BaseException) -> bool:
    """Whether ``error`` ended the moves of a package's files into the folder part-way (the SDK's
    ``move_in``): that window's other invoices are not in the folder."""
    from ksef_client import _moving  # noqa: PLC0415 - not loaded for --help

    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code is _moving.move_in.__code__:
            return True
        traceback = traceback.tb_next
    cause = error.__cause__ or error.__context__
    return cause is not None and cause is not error and _stopped_while_moving(cause)


def _go_on_from(result: ExportResult, date_type: str) -> str | None:
    """Where a truncated export goes on from: the date of its last invoice, of the export's date
    type (KSeF gives the one of that type only, and only when the package was cut)."""
    if not result.is_truncated:
        return None
    last = {
        "PermanentStorage": result.last_permanent_storage_date,
        "Invoicing": result.last_invoicing_date,
        "Issue": result.last_issue_date,
    }[date_type]
    return None if last is None else last.isoformat()


# --- KSeF certificates ------------------------------------------------------------------------


@cli.group()
def cert() -> None:
    """KSeF certificates of the logged-in subject: obtain (after a login with --cert/--pkcs12),
    complete, list, revoke, limits."""


CERT_KINDS = ("Authentication", "Offline")
CERT_STATUSES = ("Active", "Blocked", "Revoked", "Expired")
REVOKE_REASONS = ("Unspecified", "Superseded", "KeyCompromise")
P12 = click.Path(dir_okay=False, path_type=Path)
# What KSeF answers a KSeF token login asking for a certificate (certyfikaty-KSeF.md §2:
# "Uwierzytelnienie przy użyciu tokena systemowego KSeF nie pozwala na złożenie wniosku o
# certyfikat"): the spec's 25001 (GET /certificates/enrollments/data), 25002 (POST
# /certificates/enrollments); a revoke: 403 with reasonCode auth-method-not-allowed.
NO_SIGNATURE_CODES = frozenset({25001, 25002})


def _timeout_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--timeout",
        type=click.FloatRange(0, min_open=True),
        default=120.0,
        show_default=True,
        help="Seconds to wait for KSeF to issue the certificate (its status is read every 5 s).",
    )(command)


def _signature_login_needed(state: State, error: BaseException) -> CLIError | None:
    """The CLI's word for KSeF refusing a certificate operation to a KSeF token login, else ``None``."""
    from ksef_client.errors import APIStatusError, PermissionDeniedError  # noqa: PLC0415

    token_login = (isinstance(error, APIStatusError) and NO_SIGNATURE_CODES & set(error.codes)) or (
        isinstance(error, PermissionDeniedError) and error.reason_code == "auth-method-not-allowed"
    )
    if not token_login:
        return None
    return CLIError(
        f"{error_line(error).removeprefix('error: ')} - KSeF takes certificate requests and revocations only "
        f"after a login with a signature (XAdES), not a KSeF token: log in with your seal or qualified "
        f"certificate, `{login_command(state)} --cert CERT.pem --key KEY.pem` (or --pkcs12 FILE.p12), and run "
        "this again",
        AUTH,
    )


# The password of the key `cert obtain` makes (its .p12 and .pending): a variable of its own, not
# KSEF_KEY_PASSWORD, which holds the password of the key logged in with (a seal's, say), so the one
# secret never silently becomes the other.
NEW_KEY_PASSWORD = "KSEF_NEW_KEY_PASSWORD"  # noqa: S105 - the name of a variable, not a password


def _p12_password(*, new: bool) -> str:
    """The new .p12's password: $KSEF_NEW_KEY_PASSWORD, else asked without echo (twice for a new
    file); never an option (the command line is visible to other users and kept in shell
    histories), never KSEF_KEY_PASSWORD (the login key's)."""
    password = os.environ.get(NEW_KEY_PASSWORD)
    if password is None:
        password = _ask_secret("password for the new .p12 file", f"set {NEW_KEY_PASSWORD}", confirm=new)
    if not password:
        raise CLIError("an empty password: the private key is never saved unencrypted; give a password")
    return password


def _check_target(state: State, out: Path, force: bool) -> Path:
    """``<out>.pending`` after refusing what would lose a key: an ``out`` that exists (unless
    ``force``), a request still pending for it, a folder that is not there."""
    pending = pending_files.pending_path(out)
    if pending.exists():
        raise CLIError(
            f"{pending} holds a certificate request not finished yet (its key): run "
            f"`ksef -p {state.profile.name} cert complete {out}` first"
        )
    if out.exists() and not force:
        raise CLIError(f"{out} exists: choose another --out, or replace it with --force")
    if not out.parent.is_dir():
        raise CLIError(f"--out {out}: no folder {out.parent}")
    return pending


def _claim(
    state: State, saved: pending_files.PendingFile, out: Path, password: str, pending: Path, force: bool
) -> None:
    """Write ``<out>.pending`` only if no other run has one (created, never replaced: two
    ``obtain --out`` at once must not lose a key), before anything is sent; then refuse an ``out``
    that another run wrote meanwhile (unless ``force``)."""
    try:
        saved.save(pending, password, new=True)
    except FileExistsError:
        raise CLIError(
            f"{pending} appeared meanwhile: another `cert obtain --out {out}` is running (or left its request); "
            f"not replaced, nothing sent - when it is done, run `ksef -p {state.profile.name} cert complete {out}` "
            "if it left its request pending, or choose another --out"
        ) from None
    if out.exists() and not force:
        pending_files.forget(pending)
        raise CLIError(f"{out} appeared meanwhile (another run?): not replaced, nothing sent; choose another --out")


def _write_p12(credentials: KSeFCredentials, out: Path, password: str, force: bool) -> None:
    """The .p12 (atomic, 0600): replacing ``out`` only with ``force``; without it, a file that
    appeared while KSeF was issuing the certificate (another run's) is kept (``FileExistsError``)."""
    if force:
        credentials.save(out, password)
    else:
        pending_files.write_new(out, credentials.to_pkcs12(password))


def _issued(state: State, credentials: KSeFCredentials, out: Path, password: str, pending: Path, force: bool) -> None:
    """Write the .p12, only then forget the pending request, and say what was issued."""
    try:
        _write_p12(credentials, out, password, force)
    except FileExistsError:  # another run wrote it while KSeF issued ours: keep both, say how to go on
        raise CLIError(
            f"{out} appeared while the certificate was issued (another run?): not replaced - certificate "
            f"{credentials.serial_number} is issued; its key is kept in {pending}: move {out} away and run "
            f"`ksef -p {state.profile.name} cert complete {out}` (or add --force to replace it)"
        ) from None
    except OSError as error:  # the certificate is issued: the pending file (kept) finds it again by its key
        raise CLIError(
            f"{out}: {error.strerror or error} - certificate {credentials.serial_number} is issued; its key is kept "
            f"in {pending}: `ksef -p {state.profile.name} cert complete {out}` writes it once the file can be written",
            KSEF_ERROR,
        ) from error
    pending_files.forget(pending)
    _report(state, credentials, out, f"saved with its key in {out}")


def _report(state: State, credentials: KSeFCredentials, out: Path, done: str) -> None:
    """Say which certificate ``out`` holds: its serial, name, kind, validity (``--json``: those)."""
    certificate = credentials.certificate
    data = {
        "serial_number": credentials.serial_number,
        "name": credentials.name,
        "kind": credentials.certificate_type,
        "valid_from": certificate.not_valid_before_utc,
        "valid_to": certificate.not_valid_after_utc,
        "file": out,
    }
    state.out.result(
        data,
        message=f"certificate {credentials.serial_number} ({credentials.certificate_type}, {credentials.name!r}, "
        f"valid {certificate.not_valid_before_utc:%Y-%m-%d} to {certificate.not_valid_after_utc:%Y-%m-%d}) "
        f"{done}",
    )


def _written_already(out: Path, password: str, request: PendingCertificate) -> KSeFCredentials | None:
    """What ``out`` holds if it is the request's certificate with its key (a run that wrote it and
    stopped before removing the pending file), else ``None`` (another file, another password)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: PLC0415

    from ksef_client.resources.certificates import KSeFCredentials  # noqa: PLC0415

    try:
        held = SigningCredentials.from_pkcs12(out, password)
    except (ValueError, OSError):
        return None
    public = [k.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
              for k in (held.private_key, request.key)]  # fmt: skip
    if public[0] != public[1]:
        return None
    serial = f"{held.certificate.serial_number:016X}"
    return KSeFCredentials(held.certificate, held.private_key, serial, request.kind, request.name)


def _still_pending(state: State, out: Path, pending: Path, reference: str | None, cause: BaseException) -> CLIError:
    """The request stays in ``pending``; the exit code is the CLI's for ``cause`` (4 for a request
    still pending: a timeout, a lost answer; 3 and a hint to log in again for a login KSeF refused,
    since `complete` alone would meet the same 401 every time)."""
    from ksef_client.errors import CertificatePendingError  # noqa: PLC0415

    reference_text = f"request {reference}" if reference else "the request (its answer was lost)"
    code = UNREACHABLE if isinstance(cause, CertificatePendingError) else exit_code(cause)
    then = f"finish it with `ksef -p {state.profile.name} cert complete {out}`"
    if code == AUTH:
        then = f"log in again (`{login_command(state)} --cert/--pkcs12 ...`), then {then}"
    return CLIError(
        f"{error_line(cause).removeprefix('error: ')} - {reference_text} is not finished: its key is kept, "
        f"encrypted with your password, in {pending}; {then}",
        code,
    )


@cert.command("obtain")
@click.argument("name")
@click.option("--kind", type=click.Choice(CERT_KINDS), default="Authentication", show_default=True,
              help="Authentication: logs in; Offline: signs the KOD II links of offline invoices.")  # fmt: skip
@click.option("--key-type", type=click.Choice(["EC", "RSA"]), default="EC", show_default=True,
              help="EC P-256 (the guide's recommendation) or RSA 2048.")  # fmt: skip
@click.option("--out", "out", type=P12, required=True, help="The .p12 file to write (certificate and key).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@_timeout_option
@pass_state
def cert_obtain(state: State, name: str, kind: str, key_type: str, out: Path, force: bool, timeout: float) -> None:
    """Get a new KSeF certificate NAME for a new key made here; write both to an encrypted .p12.

    Needs a login with a signature (`ksef auth login --cert/--pkcs12`), not a KSeF token. The
    password comes from $KSEF_NEW_KEY_PASSWORD (not $KSEF_KEY_PASSWORD: that is the login key's) or
    is asked for (twice, no echo). The key is saved
    encrypted in OUT.pending before the request is sent; if the certificate does not come in
    time, `ksef cert complete OUT` finishes the request later.
    """
    try:
        pending_files.check_name(name)
    except ValueError as error:
        raise CLIError(str(error)) from error
    pending = _check_target(state, out, force)
    password = _p12_password(new=True)
    with state.client() as ksef:
        key = generate_private_key(key_type)
        saved = pending_files.new_pending(key, name, kind, state.profile.name, state.profile.target)
        _claim(state, saved, out, password, pending, force)  # before the request: the key exists nowhere else
        _obtain(state, ksef, saved, out, password, pending, timeout, force)


def _obtain(
    state: State,
    ksef: KSeF,
    saved: pending_files.PendingFile,
    out: Path,
    password: str,
    pending: Path,
    timeout: float,
    force: bool,
) -> None:
    from ksef_client.errors import CertificateEnrollmentError, CertificatePendingError, KSeFError  # noqa: PLC0415

    request = saved.pending

    def sent(accepted: PendingCertificate) -> None:
        # On disk before the wait: a SIGTERM or SIGHUP (no exception to catch) must not lose it.
        saved.with_reference(accepted.reference_number).save(pending, password)

    try:
        credentials = ksef.certificates.obtain(
            request.name, request.kind, key=request.key, timeout=timeout, on_sent=sent
        )
    except CertificatePendingError as error:
        saved.with_reference(error.pending.reference_number).save(pending, password)
        raise _still_pending(state, out, pending, error.pending.reference_number, error.__cause__ or error) from error
    except (CertificateEnrollmentError, KSeFError) as error:
        # Refused, or never sent (the SDK raises a plain KSeFError only then): no certificate will come.
        pending_files.forget(pending)
        hint = _signature_login_needed(state, error)
        if hint is None:
            raise
        raise hint from error
    except BaseException:
        # Interrupted (Ctrl-C) or failed in another way. The SDK puts the request in
        # certificates.unfinished just before it is sent: not there, nothing reached KSeF and the
        # key has no use. There, the request may be at KSeF: keep the key, and its reference number
        # when the SDK had one.
        maybe_sent = [p for p in ksef.certificates.unfinished if p.key is request.key]
        if not maybe_sent:
            pending_files.forget(pending)
            sys.stderr.write(
                f"stopped before the certificate request was sent: nothing reached KSeF; {pending} removed\n"
            )
            raise
        known = [p for p in maybe_sent if p.reference_number]
        if known:
            with contextlib.suppress(OSError):  # the file without it is there: the key is what matters
                saved.with_reference(known[0].reference_number).save(pending, password)
        sys.stderr.write(
            f"the certificate request's key is kept in {pending}: `ksef -p {state.profile.name} cert complete {out}`\n"
        )
        raise
    _issued(state, credentials, out, password, pending, force)


@cert.command("complete")
@click.argument("out", type=P12)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@_timeout_option
@pass_state
def cert_complete(state: State, out: Path, force: bool, timeout: float) -> None:
    """Finish the certificate request `ksef cert obtain --out OUT` left in OUT.pending: wait for
    the certificate, write OUT (the .p12, same password), remove OUT.pending."""
    from ksef_client.errors import CertificateEnrollmentError  # noqa: PLC0415

    pending = pending_files.pending_path(out)
    if not pending.is_file() and out.is_file():  # a rerun after a complete (or obtain) that finished
        state.out.result({"file": out, "pending": False}, message=f"nothing pending for {out}: it is written already")
        return
    if not pending.is_file():
        raise CLIError(f"no certificate request pending for {out} ({pending} not found)")
    password = _p12_password(new=False)
    try:
        saved = pending_files.load_pending(pending, password)
    except ValueError as error:
        raise CLIError(str(error)) from error
    if out.exists() and not force:
        written = _written_already(out, password, saved.pending)
        if written is not None:  # done, but for removing the pending file
            pending_files.forget(pending)
            _report(state, written, out, f"was saved in {out} already; {pending} removed")
            return
        raise CLIError(
            f"{out} exists and does not hold this request's certificate: the request in {pending} is written to "
            f"{out} only - move {out} away, or replace it with --force"
        )
    if saved.ksef != state.profile.target:
        raise CLIError(
            f"{pending} is a request made at {saved.ksef} (profile '{saved.profile}'), not {state.profile.target}: "
            f"run `ksef -p {saved.profile} cert complete {out}`"
        )
    with state.client() as ksef:
        try:
            credentials = ksef.certificates.complete(saved.pending, timeout=timeout)
        except CertificateEnrollmentError:
            pending_files.forget(pending)  # refused: no certificate will come, the key has no use
            raise
        except Exception as error:
            raise _still_pending(state, out, pending, saved.pending.reference_number, error) from error
        _issued(state, credentials, out, password, pending, force)


@cert.command("list")
@click.option("--status", type=click.Choice(CERT_STATUSES), help="Only certificates of this status.")
@click.option("--kind", type=click.Choice(CERT_KINDS), help="Only certificates of this kind.")
@click.option("--name", help="Only certificates whose name contains this.")
@pass_state
def cert_list(state: State, status: str | None, kind: str | None, name: str | None) -> None:
    """The subject's KSeF certificates, newest request first."""
    with state.client() as ksef:
        found = list(ksef.certificates.query(status=status, certificate_type=kind, name=name))
    rows = [
        (c.certificate_serial_number, c.name, c.type_, c.status, _minute(c.valid_from), _minute(c.valid_to),
         _minute(c.last_use_date))
        for c in found
    ]  # fmt: skip
    state.out.result(
        found,
        table=("serial", "name", "kind", "status", "valid from", "valid to", "last used"),
        rows=rows,
        message=f"{len(found)} certificate(s)",
    )


def _minute(moment: object) -> str:
    """A date-time for a table, to the minute, as KSeF gave its zone; '' for none (``--json`` has it whole)."""
    return f"{moment:%Y-%m-%d %H:%M %z}" if isinstance(moment, dt.datetime) else ""


@cert.command("revoke")
@click.argument("serial")
@click.option("--reason", type=click.Choice(REVOKE_REASONS), help="Why (KSeF records it).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def cert_revoke(state: State, serial: str, reason: str | None, yes: bool) -> None:
    """Revoke certificate SERIAL for good: it no longer logs in or signs. Asks first unless --yes."""
    try:
        serial = pending_files.check_serial(serial)
    except ValueError as error:
        raise CLIError(str(error)) from error
    if not yes:
        _confirm(f"revoke KSeF certificate {serial} for good (it can no longer log in or sign)?")
    with state.client() as ksef:
        try:
            ksef.certificates.revoke(serial, reason=reason)
        except Exception as error:
            hint = _signature_login_needed(state, error)
            if hint is None:
                raise
            raise hint from error
    state.out.result({"serial_number": serial, "revoked": True, "reason": reason}, message=f"{serial} revoked")


def _confirm(question: str) -> None:
    """Ask on the terminal (stderr: stdout stays for the result); no answer there is a usage error."""
    try:
        agreed = click.confirm(question, default=False, err=True)
    except click.Abort:
        if sys.stdin is not None and sys.stdin.isatty():
            raise
        raise CLIError(f"{question} - no terminal to ask on: pass --yes") from None
    if not agreed:
        raise CLIError("not revoked")


@cert.command("limits")
@pass_state
def cert_limits(state: State) -> None:
    """How many certificate requests and active certificates the subject may still have."""
    with state.client() as ksef:
        limits = ksef.certificates.limits()
    rows = [
        ("requests", limits.enrollment.remaining, limits.enrollment.limit),
        ("active certificates", limits.certificate.remaining, limits.certificate.limit),
    ]
    can = "may request a certificate" if limits.can_request else "may NOT request a certificate now"
    state.out.result(limits, table=("", "remaining", "limit"), rows=rows, message=f"the subject {can}")


# --- diagnostics ------------------------------------------------------------------------------


@cli.command()
@click.option("--base-url", help="Check the API at this base URL (e.g. the emulator's http://127.0.0.1:8000/v2).")
@click.option("--env", "environment", type=click.Choice(["TEST", "DEMO", "PROD"], case_sensitive=False),
              help="Check this KSeF environment.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=DOCTOR_TIMEOUT,
              show_default=True, help="Seconds to wait for the server.")  # fmt: skip
@pass_state
def doctor(state: State, base_url: str | None, environment: str | None, timeout: float) -> None:
    """Versions (SDK, pinned KSeF API, Python, httpx, platform) and the server's API version.

    The server is --base-url, --env, or the profile's KSeF when the profile is saved (otherwise
    none is checked). Its spec is read from <base URL without /v2>/docs/v2/openapi.json (public,
    no token sent). Exit codes: 0 ok (or the server's API is older), 1 the server's API is newer
    than the SDK's pin (or its answer is not a spec), 4 the server is unreachable.
    """
    target = doctor_module.resolve_target(base_url, environment)
    if target is None and config.has_profile(state.name):
        saved = state.profile
        target = doctor_module.resolve_target(saved.base_url, None if saved.base_url else saved.environment)
    report = doctor_module.diagnose(target, timeout=timeout)
    code = doctor_module.print_report(report, as_json=state.out.as_json)
    if code:
        click.get_current_context().exit(code)


# --- emulator ---------------------------------------------------------------------------------


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def mock(args: tuple[str, ...]) -> None:
    """Start the KSeF emulator (`ksef mock --help` lists its options; needs ksef-sdk[mock])."""
    from ksef_client.mock.server import main  # noqa: PLC0415 - the emulator's dependencies are optional

    raise SystemExit(main(list(args)))


def _json_after_the_command(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).out = Output(True)


def _take_json_everywhere(group: click.Group) -> None:
    """``--json`` after the command too (``ksef sessions list --json``), as before it: each
    command but ``mock`` (whose options are the emulator's) gets the option."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _take_json_everywhere(command)
        elif command.name != "mock":
            command.params.append(
                click.Option(
                    ["--json"],
                    is_flag=True,
                    expose_value=False,
                    callback=_json_after_the_command,
                    help="Machine-readable JSON on stdout (as `ksef --json ...`).",
                )
            )


_take_json_everywhere(cli)
