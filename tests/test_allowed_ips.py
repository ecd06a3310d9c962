"""``AllowedIps``: a login's IP policy, checked as KSeF's schemas check it, and written into the
XAdES ``AuthTokenRequest`` in the schema's shape (validated against the Ministry's XSD as the SDK ships it).

Sources: the spec's ``AllowedIps`` (patterns, "maximum": 10 for each list) and
``schemat_auth_v2-1.xsd`` (``AuthorizationPolicy/AllowedIps``: ``Ip4Address``, ``Ip4Range``,
``Ip4Mask``, each ``maxOccurs="10"``, in that order).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from lxml import etree

from ksef_client.schemas import auth_request_errors
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import (
    AUTH_NAMESPACE,
    AUTH_NAMESPACE_2_1,
    DSIG_NAMESPACE,
    AllowedIps,
    build_auth_token_request,
    read_allowed_ips,
    signed_auth_token_request,
    unsigned_content,
    verify_xades,
)

CHALLENGE = "20261125-CR-0123456789-ABCDEF0123-4A"
NIP = "5265877635"
NS = {"a": AUTH_NAMESPACE_2_1}


def _unsigned(document: bytes) -> etree._Element:
    """The signed document with its signature taken out: what the schema describes."""
    root = etree.fromstring(document)
    assert root[-1].tag == f"{{{DSIG_NAMESPACE}}}Signature"
    return unsigned_content(root)


def test_strings_and_ipaddress_objects_become_ksefs_forms() -> None:
    policy = AllowedIps(
        addresses=["192.168.0.10", ipaddress.IPv4Address("10.0.0.1"), " 192.168.0.10 "],
        ranges=["10.0.0.1-10.0.0.254", ("172.16.0.1", ipaddress.IPv4Address("172.16.0.9"))],
        masks=["172.16.0.0/16", ipaddress.IPv4Network("192.168.1.0/24"), ipaddress.IPv4Interface("10.9.8.7/8")],
    )
    assert policy.ip4_addresses == ["192.168.0.10", "10.0.0.1"]  # a duplicate is sent once
    assert policy.ip4_ranges == ["10.0.0.1-10.0.0.254", "172.16.0.1-172.16.0.9"]
    assert policy.ip4_masks == ["172.16.0.0/16", "192.168.1.0/24", "10.0.0.0/8"]
    assert AllowedIps("192.0.2.1").ip4_addresses == ["192.0.2.1"]  # one value for a list of one


def test_one_start_end_pair_is_one_range() -> None:
    # Review: the docstring and RangeLike offer a single (start, end); it was read as two ranges.
    assert AllowedIps(ranges=("10.0.0.1", "10.0.0.9")).ip4_ranges == ["10.0.0.1-10.0.0.9"]
    pair = (ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.9"))
    assert AllowedIps(ranges=pair).ip4_ranges == ["10.0.0.1-10.0.0.9"]
    two = AllowedIps(ranges=("10.0.0.1-10.0.0.9", "10.1.0.1-10.1.0.9"))  # two ranges as text stay two
    assert two.ip4_ranges == ["10.0.0.1-10.0.0.9", "10.1.0.1-10.1.0.9"]


def test_a_comment_in_a_signed_requests_policy_is_not_read_as_its_content() -> None:
    # Review: a comment first in AuthorizationPolicy (valid against schema 2.1, read by the
    # emulator) was taken for the AllowedIps element: "no address, range or mask".
    request = etree.fromstring(
        f'<AuthTokenRequest xmlns="{AUTH_NAMESPACE_2_1}"><AuthorizationPolicy><!-- office --><AllowedIps>'
        "<Ip4Address>192.0.2.10</Ip4Address></AllowedIps></AuthorizationPolicy></AuthTokenRequest>"
    )
    policy = read_allowed_ips(request)
    assert policy is not None and policy.ip4_addresses == ["192.0.2.10"]


def test_the_specs_own_example_range_with_an_en_dash_is_read_as_a_range() -> None:
    # The spec's description of ip4Ranges: "np. `10.0.0.1\u201310.0.0.254`" (an en dash); its pattern takes "-".
    assert AllowedIps(ranges="10.0.0.1\u201310.0.0.254").ip4_ranges == ["10.0.0.1-10.0.0.254"]


def test_a_mask_with_host_bits_is_sent_as_its_network() -> None:
    assert AllowedIps(masks="10.1.2.3/8").ip4_masks == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"addresses": ["2001:db8::1"]}, "'2001:db8::1' is an IPv6 address"),
        ({"addresses": [ipaddress.ip_address("::1")]}, "IPv6"),
        ({"addresses": ["192.168.0.256"]}, "'192.168.0.256' is not an IPv4 address"),
        ({"addresses": ["192.168.000.1"]}, "'192.168.000.1'"),  # leading zeros: not the spec's pattern
        ({"addresses": ["192.168.0"]}, "'192.168.0'"),
        ({"addresses": [3232235521]}, "3232235521 is not an IPv4 address"),
        ({"ranges": ["10.0.0.9-10.0.0.1"]}, "'10.0.0.9-10.0.0.1' starts (10.0.0.9) after it ends (10.0.0.1)"),
        ({"ranges": ["10.0.0.1"]}, "'10.0.0.1' is not a range"),
        ({"ranges": ["10.0.0.1-10.0.0.x"]}, "'10.0.0.x' is not an IPv4 address"),
        ({"ranges": [("10.0.0.1", "::1")]}, "IPv6"),
        ({"masks": ["10.0.0.0/33"]}, "'10.0.0.0/33': the prefix must be a number from 0 to 32"),
        ({"masks": ["10.0.0.0/-1"]}, "'10.0.0.0/-1': the prefix"),
        ({"masks": ["10.0.0.0"]}, "'10.0.0.0' is not in CIDR notation"),
        ({"masks": ["2001:db8::/32"]}, "IPv6"),
        ({"masks": [ipaddress.ip_network("2001:db8::/32")]}, "IPv6"),
        ({"addresses": b"10.0.0.1"}, "expected a list"),
    ],
)
def test_bad_values_are_refused_naming_them(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match="allowed_ips") as caught:
        AllowedIps(**options)
    assert named in str(caught.value)


@pytest.mark.parametrize("kind", ["addresses", "ranges", "masks"])
def test_at_most_ten_of_each_kind(kind: str) -> None:
    values: list[str] = {
        "addresses": [f"10.0.0.{i}" for i in range(11)],
        "ranges": [f"10.0.{i}.1-10.0.{i}.9" for i in range(11)],
        "masks": [f"10.{i}.0.0/16" for i in range(11)],
    }[kind]
    options: dict[str, Any] = {kind: values[:10]}
    assert len(getattr(AllowedIps(**options), kind)) == 10
    with pytest.raises(ValueError, match=f"at most 10 {kind}"):
        AllowedIps(**{kind: values})  # type: ignore[arg-type]


def test_the_clients_own_address_counts_among_the_ten() -> None:
    ten = [f"10.0.0.{i}" for i in range(10)]
    with pytest.raises(ValueError, match=r"got 11 \(with the client's own"):
        AllowedIps(ten, include_client_ip=True)
    assert len(AllowedIps(ten[:9], include_client_ip=True).resolved("192.0.2.7").addresses) == 10


def test_an_empty_policy_is_refused() -> None:
    # An empty allow-list would mean "from nowhere" or be ignored: neither is what a caller meant.
    with pytest.raises(ValueError, match="allowed_ips=None"):
        AllowedIps()


def test_the_clients_own_address_comes_from_the_challenge() -> None:
    policy = AllowedIps.client_ip()
    with pytest.raises(ValueError, match="clientIp"):
        policy.ip4_addresses  # noqa: B018 - not known before the challenge
    assert policy.resolved("203.0.113.7").ip4_addresses == ["203.0.113.7"]
    assert policy.resolved("::ffff:203.0.113.7").ip4_addresses == ["203.0.113.7"]  # a dual-stack server's view
    listed = AllowedIps(["203.0.113.7"], include_client_ip=True).resolved("203.0.113.7")
    assert listed.ip4_addresses == ["203.0.113.7"]
    with pytest.raises(ValueError, match="2001:db8::1, an IPv6 address"):
        policy.resolved("2001:db8::1")
    fixed = AllowedIps("192.0.2.1")
    assert fixed.resolved("203.0.113.7") is fixed  # asked for no client address


def test_the_request_carries_the_policy_in_the_schemas_order() -> None:
    policy = AllowedIps(
        masks=["192.168.1.0/24"], ranges=["222.111.0.1-222.111.0.255"], addresses=["192.168.0.1", "192.222.111.1"]
    )  # the guide's example (uwierzytelnianie.md), given in another order
    root = build_auth_token_request(CHALLENGE, "Nip", NIP, allowed_ips=policy)
    assert auth_request_errors(root) == []  # the shipped schema 2.1 (auth/schemy/schemat_auth_v2-1.xsd)
    assert etree.QName(root).namespace == AUTH_NAMESPACE_2_1  # 2.0's IP patterns are no valid XSD as published
    allowed = root.find("a:AuthorizationPolicy/a:AllowedIps", NS)
    assert allowed is not None
    assert [(etree.QName(e).localname, e.text) for e in allowed] == [
        ("Ip4Address", "192.168.0.1"),
        ("Ip4Address", "192.222.111.1"),
        ("Ip4Range", "222.111.0.1-222.111.0.255"),
        ("Ip4Mask", "192.168.1.0/24"),
    ]
    assert etree.QName(root[-1]).localname == "AuthorizationPolicy"  # after SubjectIdentifierType
    assert read_allowed_ips(root) == policy


def test_the_schema_refuses_another_order_so_the_check_above_means_something() -> None:
    root = build_auth_token_request(CHALLENGE, "Nip", NIP, allowed_ips=AllowedIps("10.0.0.1", masks="10.0.0.0/8"))
    allowed = root.find("a:AuthorizationPolicy/a:AllowedIps", NS)
    assert allowed is not None
    allowed.append(allowed[0])  # the address after the mask
    assert "Ip4Address': This element is not expected" in auth_request_errors(root)[0]
    with pytest.raises(ValueError, match="Ip4Address, then Ip4Range, then Ip4Mask"):
        read_allowed_ips(root)


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_a_signed_request_with_a_policy_is_valid_and_verifies(key_type: str) -> None:
    creds = self_signed_certificate(NIP, kind="seal", key_type=key_type)
    policy = AllowedIps([f"10.0.0.{i}" for i in range(10)], [f"10.1.{i}.0-10.1.{i}.9" for i in range(10)],
                        [f"10.{i}.0.0/16" for i in range(2, 12)])  # fmt: skip
    document = signed_auth_token_request(CHALLENGE, "Nip", NIP, creds, allowed_ips=policy)
    assert auth_request_errors(_unsigned(document)) == []
    verified = verify_xades(document)  # the signature covers the policy
    assert read_allowed_ips(verified.root) == policy


def test_without_a_policy_the_request_stays_as_it_was() -> None:
    root = build_auth_token_request(CHALLENGE, "Nip", NIP)
    assert etree.QName(root).namespace == AUTH_NAMESPACE
    assert auth_request_errors(root) == []  # the shipped schema 2.0
    assert read_allowed_ips(root) is None
    assert [etree.QName(e).localname for e in root] == ["Challenge", "ContextIdentifier", "SubjectIdentifierType"]


def test_an_unresolved_policy_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="include_client_ip"):
        build_auth_token_request(CHALLENGE, "Nip", NIP, allowed_ips=AllowedIps.client_ip())
