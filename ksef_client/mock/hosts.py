"""Which ``Host`` names the emulator answers to: its guard against DNS rebinding.

A web page whose own name an attacker rebinds to 127.0.0.1 is same-origin with an emulator
listening there: without this check it could log in with a self-signed certificate (which the
TEST profile accepts, as KSeF TEST does) and read every invoice. Such a page's requests carry its
own name in ``Host``, so an emulator that listens on a loopback address answers only requests
addressed to a loopback name (``localhost`` with or without the root's dot), the address it
listens on, or a name it was told to allow (403 otherwise), on every route: ``/v2``, storage and ``/_mock/*``.

An emulator listening on any other address (``0.0.0.0``, ``::`` or a network address) is
reachable from the network anyway and is addressed by whatever names lead there (a container's
service name, the machine's): ``/v2`` and storage answer any ``Host`` unless allowed names are
given, while the control endpoints keep answering loopback names and the bound address only (plus
the allowed names). An app made without a listening address (in-process, ``httpx.ASGITransport``)
checks ``/v2`` and storage only when given allowed names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response

# ``localhost.``: the same name with the root's dot, which no resolver sends out. The names under
# ``localhost`` (``ksef.localhost``) are not here: RFC 6761 only says a resolver should answer them
# itself, and a system resolver may forward one to a DNS server that can rebind it (allow by name).
LOOPBACK_HOSTS = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) names this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name of a ``Host`` header: without its port or an IPv6 address's brackets, lower case."""
    if host_header.startswith("["):
        name = host_header[1:].split("]", maxsplit=1)[0]
    elif host_header.count(":") == 1:
        name = host_header.rsplit(":", 1)[0]
    else:  # a bare name, or an IPv6 address without brackets
        name = host_header
    return name.lower()


def allowed_host(value: str) -> str:
    """``value`` as an allowed name (``ValueError`` for one with a port, a path or spaces)."""
    if not isinstance(value, str):
        raise TypeError(f"allowed host: a str, not {type(value).__name__}")
    name = value.strip().lower()
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if not bare or any(c.isspace() or c in "/@?#[]" for c in bare) or not bare.isprintable():
        raise ValueError(f"allowed host {value!r}: a host name or an IP address")
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise ValueError(f"allowed host {value!r}: a host name without a port") from None
    return bare


@dataclass(frozen=True)
class HostPolicy:
    """The names requests may address the emulator by (``names``), and whether the whole API
    holds them to it (``everywhere``) or only the control endpoints (which always do)."""

    names: frozenset[str]
    everywhere: bool

    @classmethod
    def of(cls, host: str | None, allowed_hosts: Iterable[str] = ()) -> HostPolicy:
        """The policy of an app listening on ``host`` (``None``: none, an in-process app)."""
        if isinstance(allowed_hosts, str):
            raise TypeError("allowed_hosts: a list of names, not one str")
        extra = {allowed_host(name) for name in allowed_hosts}
        names = set(LOOPBACK_HOSTS) | extra
        if host:
            names.add(host_name(host) if host.startswith("[") else host.lower())
        return cls(frozenset(names), bool(extra) or (host is not None and is_loopback(host)))

    def allows(self, host_header: str) -> bool:
        """Whether a request with this ``Host`` header is addressed to the emulator."""
        return host_name(host_header) in self.names

    def refusal(self, host_header: str) -> Response:
        """The 403 for a request addressed to another name (problem details, which the SDK's
        errors show): which names the emulator answers to, and how to allow another."""
        shown = host_name(host_header)[:100] or "(none)"
        detail = (
            f"Host {shown!r} is not a name of this emulator: it answers to {', '.join(sorted(self.names))} "
            "(a guard against DNS rebinding: a web page sends its own name). To address it by another "
            "name, allow that name: ksef-mock --allow-host NAME, or allowed_hosts=[...] of "
            "ThreadedServer or create_app()."
        )
        body = {"title": "Forbidden", "status": 403, "detail": detail, "allowedHosts": sorted(self.names)}
        return JSONResponse(body, status_code=403, media_type="application/problem+json")
