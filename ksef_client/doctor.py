"""``ksef doctor`` / ``python -m ksef_client.doctor``: the versions a bug report needs, and whether a
KSeF server has moved ahead of the API version this SDK was generated from.

::

    python -m ksef_client.doctor --env TEST
    python -m ksef_client.doctor --base-url http://127.0.0.1:8000/v2 --json

It prints the SDK's version, the pinned KSeF API version and build (read from the spec shipped in
the package), Python, httpx and the platform; given a server, it downloads the spec the server
publishes (``<base URL without /v2>/docs/v2/openapi.json``: public, no token is sent; TLS verified)
and compares the API versions numerically (2.10.0 is newer than 2.9.0).

The report goes to stdout (JSON with ``--json``); a warning or an error, one line, to stderr.

Exit codes:

==== =========================================================================================
0    no server checked; or the server publishes the pinned API version, or an older one (noted)
1    the server publishes a newer API version than the pin (the SDK may not know its new fields
     or operations); or its answer is not a spec that names its version
2    usage error (bad option, or a base URL that is not http(s))
4    the server could not be reached (connection refused, DNS, TLS, timeout)
==== =========================================================================================
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import dataclass
from typing import Any

import httpx

from ksef_client import __version__
from ksef_client._body import ACCEPT_ENCODING, read_capped
from ksef_client.cli.output import printable
from ksef_client.environments import Environment
from ksef_client.errors import ResponseFormatError, ResponseTooLargeError
from ksef_client.spec_version import SpecVersion, compare_versions, declared_version, pinned_version, spec_url

OK, NOT_OK, UNREACHABLE = 0, 1, 4
DEFAULT_TIMEOUT = 10.0
# The most of a published spec doctor reads (decoded): KSeF's is under 1 MB.
MAX_SPEC_BYTES = 32 * 1024 * 1024
# Redirects followed within the spec URL's origin.
MAX_REDIRECTS = 5
UPGRADE = "pip install --upgrade ksef-sdk"


@dataclass(frozen=True)
class ServerCheck:
    """What a server answered at its spec URL: the version its spec declares, or why there is none
    (``reachable`` is ``False`` when no HTTP answer came at all)."""

    base_url: str
    spec_url: str
    reachable: bool
    version: SpecVersion | None = None
    error: str | None = None


@dataclass(frozen=True)
class Report:
    """Everything ``ksef doctor`` prints; ``status`` and ``exit_code`` sum it up."""

    sdk_version: str
    pinned: SpecVersion | None
    python_version: str
    python_implementation: str
    httpx_version: str
    platform: str
    server: ServerCheck | None = None
    pin_error: str | None = None

    @property
    def status(self) -> str:
        """``not_checked``, ``ok``, ``server_older``, ``server_newer``, ``unreachable``,
        ``bad_answer`` or ``pin_unknown`` (the shipped spec is missing: run ``make spec``)."""
        if self.server is None:
            return "not_checked"
        if not self.server.reachable:
            return "unreachable"
        if self.server.version is None:
            return "bad_answer"
        if self.pinned is None:
            return "pin_unknown"
        order = compare_versions(self.server.version.api_version, self.pinned.api_version)
        return {0: "ok", 1: "server_newer", -1: "server_older"}[order]

    @property
    def exit_code(self) -> int:
        """0, 1 or 4 (see the module's documentation)."""
        status = self.status
        if status == "unreachable":
            return UNREACHABLE
        return OK if status in {"not_checked", "ok", "server_older"} else NOT_OK

    @property
    def message(self) -> str:
        """The verdict in one sentence (printed after ``ok:``, ``note:``, ``warning:`` or ``error:``)."""
        server = self.server
        if server is None:
            return "no server checked (give --base-url URL or --env TEST|DEMO|PROD)"
        if not server.reachable:
            return f"could not reach {server.spec_url}: {server.error}"
        if server.version is None:
            return f"{server.spec_url} answered, but not with a KSeF spec naming its API version: {server.error}"
        return self._comparison(server.version)

    def _comparison(self, server: SpecVersion) -> str:
        theirs, pinned = server.api_version, self.pinned
        if pinned is None:
            return f"the server publishes API {theirs}; this SDK's pin is unknown: {self.pin_error}"
        order = compare_versions(theirs, pinned.api_version)
        if order > 0:
            return (f"the server publishes API {theirs}, newer than the {pinned.api_version} this SDK is pinned to: "
                    f"the SDK may not know its new fields or operations; upgrade: {UPGRADE}")  # fmt: skip
        if order < 0:
            return (f"the server publishes API {theirs}, older than the {pinned.api_version} this SDK is pinned to: "
                    "fields or operations added since may be refused there")  # fmt: skip
        other_build = server.build and pinned.build and server.build != pinned.build
        return f"the server publishes API {theirs}, the version this SDK is pinned to" + (
            f" (another build: {server.build})" if other_build else ""
        )

    @property
    def level(self) -> str:
        """How to prefix ``message``: ``ok``, ``note``, ``warning`` or ``error``."""
        return {"ok": "ok", "not_checked": "note", "server_older": "note", "server_newer": "warning"}.get(
            self.status, "error"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (snake_case keys)."""
        server = self.server
        return {
            "sdk_version": self.sdk_version,
            "pinned_api_version": self.pinned.api_version if self.pinned else None,
            "pinned_build": self.pinned.build if self.pinned else None,
            "python_version": self.python_version,
            "python_implementation": self.python_implementation,
            "httpx_version": self.httpx_version,
            "platform": self.platform,
            "server": None if server is None else {
                "base_url": server.base_url,
                "spec_url": server.spec_url,
                "reachable": server.reachable,
                "api_version": server.version.api_version if server.version else None,
                "build": server.version.build if server.version else None,
                "error": server.error,
            },
            "status": self.status,
            "message": self.message,
        }  # fmt: skip

    def render(self) -> str:
        """The report for people: one fact a line; the verdict last when it is not a problem
        (``warning``/``error`` verdicts belong on stderr: see ``print_report``)."""
        rows = [
            ("ksef-sdk", self.sdk_version),
            ("KSeF API (pin)", str(self.pinned) if self.pinned else f"unknown ({self.pin_error})"),
            ("Python", f"{self.python_version} ({self.python_implementation})"),
            ("httpx", self.httpx_version),
            ("platform", self.platform),
        ]
        if self.server is not None:
            rows.append(("server", self.server.base_url))
            rows.append(("server spec", self.server.spec_url))
            if not self.server.reachable:
                rows.append(("server API", "unreachable"))
            else:
                rows.append(("server API", str(self.server.version) if self.server.version else "unknown"))
        lines = [f"{label:<15} {value}" for label, value in rows]
        if self.level in {"ok", "note"}:
            lines.append(f"{self.level}: {self.message}")
        return "\n".join(lines)


def _describe(error: Exception) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def check_base_url(base_url: str) -> str:
    """``base_url`` when it is an absolute http(s) URL; ``ValueError`` otherwise."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as error:
        raise ValueError(f"base URL {base_url!r}: {error}") from error
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"base URL {base_url!r} is not an http(s) URL (e.g. https://api-test.ksef.mf.gov.pl/v2)")
    return base_url


def check_server(base_url: str, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> ServerCheck:  # fmt: skip
    """Download the spec the API at ``base_url`` publishes and read its version. Never raises for
    what the network or the server does: that is in the result. No ``Authorization`` header is sent
    (the spec is public); TLS certificates are verified, proxies come from the environment.

    The server is held to what the SDK's own clients take: the body is read up to ``MAX_SPEC_BYTES``
    decoded (one content coding at most, gzip or deflate, inflated a piece at a time: a
    decompression bomb stops at the cap), and redirects are followed only within the spec URL's
    origin (the same scheme, host and port), ``MAX_REDIRECTS`` at most; one elsewhere is reported,
    not followed."""
    url = spec_url(check_base_url(base_url))
    headers = {
        "Accept": "application/json",
        "Accept-Encoding": ACCEPT_ENCODING,  # what _body.decoded takes (httpx would offer br, zstd)
        "User-Agent": f"ksef-sdk/{__version__} (doctor)",
    }
    try:
        with httpx.Client(timeout=timeout, headers=headers, follow_redirects=False, transport=transport) as client:
            body, error = _download(client, httpx.URL(url))
    except httpx.TransportError as failure:  # connection, DNS, TLS, timeout, broken answer
        return ServerCheck(base_url, url, reachable=False, error=_describe(failure))
    if body is None:
        return ServerCheck(base_url, url, reachable=True, error=error)
    try:
        spec = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser follows
        return ServerCheck(base_url, url, reachable=True, error="the answer is not JSON")
    declared = declared_version(spec) if isinstance(spec, dict) else None
    if declared is None:
        return ServerCheck(base_url, url, reachable=True, error='no "Wersja API" in info.description')
    return ServerCheck(base_url, url, reachable=True, version=declared)


def _download(client: httpx.Client, url: httpx.URL) -> tuple[bytes | None, str | None]:
    """The spec's body, or ``None`` and why there is none (an HTTP status, a redirect to another
    origin, a body past the cap or one that does not decode)."""
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", url) as response:
            if response.is_redirect:
                target, refused = _redirect(url, response)
                if target is None:
                    return None, f"HTTP {response.status_code}: {refused}, not followed"
                url = target
                continue
            if response.status_code != 200:
                return None, f"HTTP {response.status_code}"
            try:
                return read_capped(response, "spec", MAX_SPEC_BYTES), None
            except ResponseTooLargeError:
                return None, f"the answer is larger than {MAX_SPEC_BYTES} bytes (decoded); not read further"
            except ResponseFormatError as error:  # stacked or unknown content codings, a broken stream
                return None, _describe(error)
    return None, f"more than {MAX_REDIRECTS} redirects"


def _redirect(url: httpx.URL, response: httpx.Response) -> tuple[httpx.URL | None, str]:
    """Where a redirect from ``url`` leads, if within its origin (scheme, host, port); else
    ``None`` and what it is."""
    try:
        target = url.join(response.headers["Location"])
    except httpx.InvalidURL:
        return None, "a redirect to an invalid URL"
    if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
        where = f"{target.scheme}://{target.netloc.decode('ascii', 'replace')}"[:200]
        return None, f"a redirect to another server ({where})"
    return target, ""


def diagnose(base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
             transport: httpx.BaseTransport | None = None) -> Report:  # fmt: skip
    """The local versions and, given ``base_url``, what that server publishes."""
    pinned, pin_error = None, None
    try:
        pinned = pinned_version()
    except (OSError, ValueError) as error:
        pin_error = f"{_describe(error)} (a source checkout needs `make spec`)"
    return Report(
        sdk_version=__version__,
        pinned=pinned,
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        httpx_version=httpx.__version__,
        platform=platform.platform(),
        server=None if base_url is None else check_server(base_url, timeout=timeout, transport=transport),
        pin_error=pin_error,
    )


def print_report(report: Report, *, as_json: bool) -> int:
    """Print ``report`` (JSON or text on stdout; a warning or an error, one line, on stderr);
    returns its exit code."""
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:  # the server's version, build and errors are its text: no control character reaches the terminal
        sys.stdout.write("\n".join(map(printable, report.render().split("\n"))) + "\n")
    if report.level in {"warning", "error"}:
        sys.stderr.write(f"{report.level}: {printable(report.message)}\n")
    return report.exit_code


def resolve_target(base_url: str | None, environment: str | None) -> str | None:
    """The base URL to check: ``base_url``, or the environment's (``TEST``, ``DEMO``, ``PROD``, any
    case); ``ValueError`` when both are given or the environment is unknown."""
    if base_url and environment:
        raise ValueError("give --base-url or --env, not both")
    if environment:
        try:
            return Environment[environment.upper()].base_url
        except KeyError:
            raise ValueError(f"--env {environment!r}: one of TEST, DEMO, PROD") from None
    return check_base_url(base_url) if base_url else None


def main(argv: list[str] | None = None) -> int:
    """``python -m ksef_client.doctor [--base-url URL | --env TEST|DEMO|PROD] [--json]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ksef_client.doctor",
        description="Versions of the SDK, its pinned KSeF API, Python, httpx and the platform; with a server, "
        "whether its published API is newer than the pin.",
        epilog="Exit codes: 0 ok (or the server's API is older), 1 the server's API is newer than the pin (or its "
        "answer is not a spec), 2 usage, 4 the server is unreachable.",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--base-url", help="check the API at this base URL (e.g. http://127.0.0.1:8000/v2)")
    target.add_argument("--env", choices=[e.name for e in Environment], type=str.upper,
                        help="check this KSeF environment")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error("--timeout: a positive number of seconds")
    try:
        base_url = resolve_target(args.base_url, args.env)
    except ValueError as error:
        parser.error(str(error))
    return print_report(diagnose(base_url, timeout=args.timeout), as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
