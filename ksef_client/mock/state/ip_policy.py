"""A login's IP policy (``AuthorizationPolicy``/``AllowedIps``) and its check, as KSeF applies it.

What KSeF documents: the policy is sent with the login, in ``POST /auth/ksef-token``'s
``authorizationPolicy`` ("Polityka autoryzacji żądań przy każdym użyciu tokena dostępu.") or the
XAdES ``AuthTokenRequest``'s ``AuthorizationPolicy`` (uwierzytelnianie.md: "Reguły dotyczące
walidacji adresu IP klienta podczas korzystania z wydanego tokena dostępu (accessTokena)."); a
request from elsewhere is refused with the spec's 403 problem details, ``reasonCode``
``ip-not-allowed`` ("Żądanie pochodzi z adresu IP innego niż wskazany podczas uwierzytelnienia.")
and ``security`` ``clientIp`` (the spec's table: "ip-not-allowed | clientIp: string").

Pure Python, independent of the SDK's own ``AllowedIps`` (the emulator must not share its bugs):
the values are checked against the patterns of ``schemat_auth_v2-1.xsd`` (the spec's
``AllowedIps`` has the same since API 2.6: api-changelog.md "zastosowano te same patterny, co w
schemie AuthTokenRequest 2.1") and the limit of 10 of each kind (XSD ``maxOccurs="10"``, the spec's
``"maximum": 10``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_ADDRESS = rf"({_OCTET}\.){{3}}{_OCTET}"
# schemat_auth_v2-1.xsd, Ip4Address / Ip4Range / Ip4Mask (an XSD pattern matches the whole value).
PATTERNS = {
    "Ip4Address": re.compile(_ADDRESS),
    "Ip4Range": re.compile(rf"{_ADDRESS}-{_ADDRESS}"),
    "Ip4Mask": re.compile(rf"{_ADDRESS}/(0|[1-9]|[12][0-9]|3[0-2])"),
}
MAX_EACH = 10
# The Ministry's message of the spec's reasonCode table.
IP_NOT_ALLOWED = "Żądanie pochodzi z adresu IP innego niż wskazany podczas uwierzytelnienia."


@dataclass(frozen=True)
class IpPolicy:
    """The allowed addresses of a login, as sent (``Ip4Address``, ``Ip4Range`` ``start-end``,
    ``Ip4Mask`` ``address/prefix``)."""

    addresses: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()
    masks: tuple[str, ...] = ()

    def allows(self, host: str) -> bool:
        """Whether a request from ``host`` (the connection's address) may use the tokens.

        An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, a dual-stack server's view of an IPv4
        client) is that IPv4 address; any other IPv6 address, or no address, matches nothing (the
        policy names IPv4 addresses only). A range whose start is after its end holds no address
        (the schemas do not forbid one; what KSeF does with it is not documented). A policy with
        no entries allows nothing: it is a list of the allowed addresses.
        """
        try:
            found = ipaddress.ip_address(host)
        except ValueError:
            return False
        address = found.ipv4_mapped if isinstance(found, ipaddress.IPv6Address) else found
        if address is None:
            return False
        if any(address == ipaddress.IPv4Address(a) for a in self.addresses):
            return True
        for span in self.ranges:
            start, end = (ipaddress.IPv4Address(part) for part in span.split("-"))
            if start <= address <= end:
                return True
        # A mask with host bits set (the pattern allows "10.1.2.3/8") is its network.
        return any(address in ipaddress.IPv4Network(m, strict=False) for m in self.masks)


def ip_policy(addresses: Iterable[str] = (), ranges: Iterable[str] = (), masks: Iterable[str] = ()) -> IpPolicy:
    """An ``IpPolicy`` of the values as sent; ``ValueError`` naming the first one the schemas
    refuse (pattern, more than 10 of a kind)."""
    policy = IpPolicy(tuple(addresses), tuple(ranges), tuple(masks))
    for kind, values in (("Ip4Address", policy.addresses), ("Ip4Range", policy.ranges), ("Ip4Mask", policy.masks)):
        if len(values) > MAX_EACH:
            raise ValueError(f"{kind}: najwyżej {MAX_EACH} wartości, przesłano {len(values)}.")
        for value in values:
            if not isinstance(value, str) or PATTERNS[kind].fullmatch(value) is None:
                raise ValueError(f"{kind}: {value!r} nie jest zgodne ze wzorcem.")
    return policy
