"""The emulator checks each signed ``AuthTokenRequest`` against the XSD of its namespace, as KSeF does.

The spec's POST /auth/xades-signature: "Obsługiwane schematy: auth v2.0, auth v2.1", and in its 400
table "21401 | Dokument nie jest zgodny ze schemą (xsd). | {treść błędu walidacji}". The emulator
read a few elements by hand and so took documents neither schema allows (a malformed challenge, an
element too many, the elements out of order, two context identifiers) and answered 21405 for a
context identifier the schema refuses. The schema does not hold the enveloped ``ds:Signature``
(no ``xsd:any`` in ``AuthTokenRequest``): what is checked is the signed content, the document as
the signature's transform leaves it (auth/podpis-xades.md: "otaczany (enveloped)").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from lxml import etree

from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.schemas import auth_schema
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import (
    AUTH_NAMESPACE,
    AUTH_NAMESPACE_2_1,
    DSIG_NAMESPACE,
    AllowedIps,
    build_auth_token_request,
    sign_xades,
)
from tests.conftest import NIP

SEAL = self_signed_certificate(NIP, kind="seal")
SCHEMA_TEXT = "Dokument nie jest zgodny ze schemą (xsd)."


def _post(
    ksef_mock: KSeFMock, edit: Callable[[Any], None], *, policy: AllowedIps | None = None, v2_0: bool = False
) -> httpx.Response:
    """A XAdES login to ``NIP`` whose request ``edit`` changed before it was signed (``v2_0``: a
    request with a ``policy`` in the namespace of schema 2.0, which allows one too)."""
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        challenge = client.post("/auth/challenge").json()["challenge"]
        root = build_auth_token_request(challenge, "Nip", NIP, allowed_ips=policy)
        if v2_0:
            root = etree.fromstring(etree.tostring(root).replace(AUTH_NAMESPACE_2_1.encode(), AUTH_NAMESPACE.encode()))
        edit(root)
        document = sign_xades(root, SEAL)
        return client.post("/auth/xades-signature", content=document, headers={"Content-Type": "application/xml"})


def _element(root: Any, name: str, text: str | None = None) -> Any:
    element = root.makeelement(f"{{{etree.QName(root).namespace}}}{name}")
    element.text = text
    return element


def _find(root: Any, path: str) -> Any:
    namespace = etree.QName(root).namespace
    return root.find("/".join(f"{{{namespace}}}{step}" for step in path.split("/")))


def _challenge(text: str) -> Callable[[Any], None]:
    def edit(root: Any) -> None:
        _find(root, "Challenge").text = text

    return edit


def _context(text: str, kind: str = "Nip") -> Callable[[Any], None]:
    def edit(root: Any) -> None:
        identifier = _find(root, "ContextIdentifier")[0]
        identifier.tag, identifier.text = f"{{{etree.QName(root).namespace}}}{kind}", text

    return edit


def _extra(root: Any) -> None:
    root.append(_element(root, "Extra", "x"))


def _two_challenges(root: Any) -> None:
    root.insert(1, _element(root, "Challenge", _find(root, "Challenge").text))


def _context_first(root: Any) -> None:
    root.insert(0, _find(root, "ContextIdentifier"))


def _two_identifiers(root: Any) -> None:
    _find(root, "ContextIdentifier").append(_element(root, "InternalId", f"{NIP}-00001"))


def _foreign_element(root: Any) -> None:
    root.append(etree.Element("{urn:other}Note"))


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (_challenge("20250514-CR-226FB7B000-3ACF9BE4C0"), "Challenge"),  # too short for its pattern
        (_challenge("not a challenge at all, 36 chars..."), "Challenge"),
        (_context("0265877635"), "Nip"),  # TNIP: no leading 0
        (_context("123"), "Nip"),  # answered 21405 before
        (_context("5265877635", "Pesel"), "Pesel"),  # no such choice: answered 21405 before
        (_extra, "Extra"),
        (_foreign_element, "Note"),
        (_two_challenges, "Challenge"),
        (_context_first, "ContextIdentifier"),
        (_two_identifiers, "InternalId"),
    ],
    ids=[
        "short-challenge", "other-challenge", "nip-leading-zero", "short-nip", "unknown-context",
        "extra-element", "foreign-element", "two-challenges", "out-of-order", "two-identifiers",
    ],
)  # fmt: skip
def test_a_request_neither_schema_allows_is_21401(ksef_mock: KSeFMock, edit: Callable[[Any], None], names: str) -> None:
    answer = _post(ksef_mock, edit)
    assert answer.status_code == 400, answer.text
    [detail] = answer.json()["exception"]["exceptionDetailList"]
    assert (detail["exceptionCode"], detail["exceptionDescription"]) == (21401, SCHEMA_TEXT)
    assert len(detail["details"]) == 1 and names in detail["details"][0]  # the validator's first error


def test_a_policy_in_a_v2_0_document_is_checked_against_v2_0(ksef_mock: KSeFMock) -> None:
    # v2-0's IP patterns (libxml2 compiles them only rewritten, read as KSeF's .NET reads them)
    # take the same addresses as v2-1's.
    policy = AllowedIps(["127.0.0.1"], ["10.0.0.1-10.0.0.9"], ["172.16.0.0/12"])
    answer = _post(ksef_mock, lambda root: None, policy=policy, v2_0=True)
    assert answer.status_code == 202, answer.text

    def bad_mask(root: Any) -> None:
        assert etree.QName(root).namespace == AUTH_NAMESPACE
        _find(root, "AuthorizationPolicy/AllowedIps/Ip4Mask").text = "172.16.0.0/33"

    answer = _post(ksef_mock, bad_mask, policy=policy, v2_0=True)
    assert answer.status_code == 400, answer.text
    [detail] = answer.json()["exception"]["exceptionDetailList"]
    assert detail["exceptionCode"] == 21401 and "Ip4Mask" in detail["details"][0]

    def other_digits(root: Any) -> None:  # v2-0's \d takes them, an IPv4 address does not
        _find(root, "AuthorizationPolicy/AllowedIps/Ip4Address").text = "\u0661\u0662\u0667.0.0.1"

    answer = _post(ksef_mock, other_digits, policy=policy, v2_0=True)
    assert answer.status_code == 400, answer.text
    [detail] = answer.json()["exception"]["exceptionDetailList"]
    assert detail["exceptionCode"] == 21401 and "Ip4Address" in detail["details"][0]


@pytest.mark.parametrize(
    ("kind", "value"),
    [("NipVatUe", f"{NIP}-ATU12345678"), ("PeppolId", "PPL123456"), ("InternalId", f"{NIP}-00001")],
)
@pytest.mark.parametrize("policy", [None, AllowedIps(["127.0.0.1"])], ids=["v2-0", "v2-1"])
def test_context_identifiers_the_schemas_allow_pass(
    ksef_mock: KSeFMock, kind: str, value: str, policy: AllowedIps | None
) -> None:
    # The Ministry's example NipVatUe (auth/context-identifier-nip-vat-ue.md) has no "$", which the
    # published pattern "(...)$" would ask for if read as XML Schema rather than .NET.
    answer = _post(ksef_mock, _context(value, kind), policy=policy)
    assert answer.status_code == 202, answer.text


def test_the_enveloped_signature_is_not_checked_against_the_schema(ksef_mock: KSeFMock) -> None:
    # The document as sent does not match (the schema has no place for ds:Signature); the signed
    # content, the document without its enveloped signature, does, and the login goes through.
    signed = etree.fromstring(
        sign_xades(build_auth_token_request("20250514-CR-226FB7B000-3ACF9BE4C0-10", "Nip", NIP), SEAL)
    )
    assert signed[-1].tag == f"{{{DSIG_NAMESPACE}}}Signature"
    assert not auth_schema(AUTH_NAMESPACE).validate(signed)
    answer = _post(ksef_mock, lambda root: None, policy=AllowedIps(["127.0.0.1"]))
    assert answer.status_code == 202, answer.text
