"""A client's settings: base URL, timeout, TLS verification, the hosts presigned links may use."""

from __future__ import annotations

import ipaddress
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

from ksef_client.environments import Environment, parse_environment


@dataclass(frozen=True)
class Settings:
    """Resolved client settings."""

    base_url: str
    timeout: float
    verify: bool
    storage_hosts: tuple[str, ...] = ()
    require_hash: bool = False

    @property
    def is_production(self) -> bool:
        """Whether the client talks to KSeF's production environment (``Environment.PROD``'s host,
        however the URL spells it: any case, a port, a trailing dot), where some checks apply that
        the test environments leave out (a party's NIP check digit) and ``/testdata`` does not exist."""
        return _host(self.base_url) == _host(Environment.PROD.base_url)

    @property
    def api_path_prefix(self) -> str:
        """Path of the base URL (``/v2``): requests under it are API calls, others storage."""
        return urlsplit(self.base_url).path.rstrip("/")


# Where KSeF's presigned links may point when talking to an official environment: the Ministry's
# domain, and Azure Blob Storage (the links carry its x-ms-* headers). Narrow or extend with
# ``storage_hosts=`` on the client.
OFFICIAL_STORAGE_HOSTS = ("*.mf.gov.pl", "*.blob.core.windows.net")


class InsecureTransportWarning(UserWarning):
    """Emitted when a client is created with ``verify=False``, or with a plain ``http://``
    ``base_url`` to a host other than this machine."""


def resolve_settings(
    environment: Environment | str,
    base_url: str | None,
    timeout: float,
    verify: bool,
    storage_hosts: tuple[str, ...] | list[str] | None = None,
    custom_transport: bool = False,
) -> Settings:
    """Pick the base URL from ``base_url`` or the environment; validate it.

    Presigned links (batch uploads, UPO and export downloads) may only go to ``storage_hosts``:
    by default the official storage hosts for an environment, the API's own host for a custom
    ``base_url`` (the emulator serves its storage there). ``*.example.com`` matches subdomains.
    ``custom_transport``: the caller gave the client its own transport (an in-process emulator,
    a recording), so a plain ``http://`` URL need not cross a network.
    """
    # base_url wins; the environment is read only without one (environment=None beside a
    # base_url, e.g. from os.environ.get, worked before the names were checked)
    url = (base_url or parse_environment(environment).base_url).rstrip("/")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"base_url: {url!r} is not an http(s) URL")
    if storage_hosts is None:
        storage_hosts = (urlsplit(url).hostname or "",) if base_url else OFFICIAL_STORAGE_HOSTS
    if isinstance(storage_hosts, str):
        raise TypeError("storage_hosts: a list of host names, not one string")
    if not verify:
        # Invoices and tokens travel over this connection: switching TLS checks off must be loud.
        warnings.warn(
            f"TLS certificate verification is OFF for {url}: anyone on the network path can read and "
            "alter invoices and tokens. Use verify=False only against a local emulator.",
            InsecureTransportWarning,
            stacklevel=3,
        )
    if urlsplit(url).scheme == "http" and not custom_transport and not _is_loopback(urlsplit(url).hostname):
        warnings.warn(
            f"{url} is plain http: invoices and tokens travel unencrypted to a host other than this "
            "machine. Use https, or http only to an emulator on this machine.",
            InsecureTransportWarning,
            stacklevel=3,
        )
    hosts = tuple(host.lower().rstrip(".") for host in storage_hosts)
    return Settings(base_url=url, timeout=timeout, verify=verify, storage_hosts=hosts)


def _is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost`` or a loopback address."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(url: str) -> str:
    """The host name of ``url``, lower case, without a trailing dot."""
    return (urlsplit(url).hostname or "").rstrip(".").lower()
