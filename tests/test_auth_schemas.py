"""The AuthTokenRequest XSDs as KSeF reads them (``ksef_client.schemas.auth_schema``).

The spec's POST /auth/xades-signature accepts documents of "auth v2.0" and "auth v2.1"
(auth/schemy/schemat_auth_v2-0.xsd, v2-1.xsd) and refuses one that does not match its schema with
400 / 21401 "Dokument nie jest zgodny ze schemą (xsd)." KSeF is .NET, whose XSD validator reads a
pattern as a .NET regular expression; the schemas are written for that reading (``^``/``$``
anchors, ``\\b``, ``\\/``), which XML Schema's own does not share: libxml2 will not compile v2-0,
and reads v2-1's anchors as characters a value must hold. ``auth_schema`` compiles each with the
few patterns that differ rewritten to the XML Schema pattern of the same values; these tests hold
the rewrite to the published patterns' .NET meaning (Python's ``re`` reads ``^``, ``$``, ``\\b``,
``\\d`` and ``\\/`` as .NET does).
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from pathlib import Path

import pytest
from lxml import etree

from ksef_client import schemas
from ksef_client.schemas import AUTH_SCHEMAS, auth_request_errors, auth_schema
from ksef_client.xades import AUTH_NAMESPACE, AUTH_NAMESPACE_2_1, AUTH_NAMESPACES, AllowedIps, build_auth_token_request

XSD = "http://www.w3.org/2001/XMLSchema"
CHALLENGE = "20250514-CR-226FB7B000-3ACF9BE4C0-10"
NIP = "5265877635"


def _published(version: str) -> etree._ElementTree:
    return etree.parse(str(schemas._data_dir() / AUTH_SCHEMAS[version]))


def _patterns(document: etree._ElementTree) -> dict[str, str]:
    """Each pattern of a schema by the name of the element or type it restricts."""
    found = {}
    for pattern in document.iter(f"{{{XSD}}}pattern"):
        owner = next(a for a in pattern.iterancestors() if a.get("name"))
        found[owner.get("name")] = pattern.get("value")
    return found


def _request(namespace: str, context: str = f"<Nip>{NIP}</Nip>", policy: str = "") -> etree._Element:
    return etree.fromstring(
        f'<AuthTokenRequest xmlns="{namespace}"><Challenge>{CHALLENGE}</Challenge>'
        f"<ContextIdentifier>{context}</ContextIdentifier>"
        f"<SubjectIdentifierType>certificateSubject</SubjectIdentifierType>{policy}</AuthTokenRequest>"
    )


def test_there_is_one_schema_per_namespace_the_sdk_writes() -> None:
    assert set(AUTH_SCHEMAS) == set(AUTH_NAMESPACES)


def test_libxml2_refuses_v2_0_as_published() -> None:
    # Why the rewrite exists: "^((25[0-5]|(2[0-4]|1\d|[1-9]|)\d)\.?\b){4}$" is no XML Schema regex.
    with pytest.raises(etree.XMLSchemaParseError, match="not a valid regular expression"):
        etree.XMLSchema(_published(AUTH_NAMESPACE))


@pytest.mark.parametrize("namespace", AUTH_NAMESPACES)
def test_both_schemas_compile_once(namespace: str) -> None:
    assert auth_schema(namespace) is auth_schema(namespace)
    assert auth_request_errors(_request(namespace)) == []


def test_another_namespace_has_no_schema() -> None:
    with pytest.raises(ValueError, match="no AuthTokenRequest schema for the namespace 'urn:x'"):
        auth_schema("urn:x")


def test_only_the_patterns_net_and_xml_schema_read_differently_are_rewritten() -> None:
    for namespace, rewritten in (
        (AUTH_NAMESPACE, {"Ip4Address", "Ip4Range", "Ip4Mask", "TNipVatUE", "TPeppolId"}),
        (AUTH_NAMESPACE_2_1, {"TNipVatUE", "TPeppolId"}),
    ):
        published = _patterns(_published(namespace))
        compiled = _patterns(schemas._auth_schema_document(namespace))
        assert published.keys() == compiled.keys()
        assert {name for name in published if published[name] != compiled[name]} == rewritten


@pytest.mark.parametrize(
    ("net", "xsd"),
    [
        (r"^P[A-Z]{2}[0-9]{6}$", r"P[A-Z]{2}[0-9]{6}"),
        (r"a\$", r"a\$"),  # an escaped "$" is a character in both
        (r"a\\$", r"a\\"),  # an escaped "\" and the anchor
        (r"a\/b", "a/b"),
        (r"a\\/b", r"a\\/b"),  # an escaped "\", then "/"
        (r"[\^a]", r"[\^a]"),
        (r"\d{3}\.\-", r"\d{3}\.\-"),  # escapes both read alike stay
    ],
)
def test_the_rewrite_of_one_pattern(net: str, xsd: str) -> None:
    assert schemas._xsd_pattern(net) == xsd


# --- the rewritten patterns accept exactly the values the published ones accept in .NET ----------

# Octets in and out of range, with a leading zero, in Arabic-Indic digits (a decimal digit to
# .NET's and XML Schema's \d alike), and a letter.
_PARTS = [
    *("0", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "300", "01", "00"),
    *("\u0661", "1\u0662", "a"),
]
_RANGE_SIGNS = ["-", "-", "--", ".-"]
_MASK_SIGNS = ["/", "/", "./", "\\/"]
_PREFIXES = ["0", "8", "10", "29", "32", "33", "01", "", "\u0663"]


def _addresses(rng: random.Random, count: int) -> list[str]:
    """Dotted quads of octets in and out of range, and strings near them (too few or many parts,
    a "." too many, digits of another script, a letter)."""
    found = [".".join(p) for p in itertools.product(["1", "255", "256", "01", "\u0661"], repeat=4)]
    for _ in range(count):
        parts = [rng.choice(_PARTS) for _ in range(rng.choice([3, 4, 4, 4, 5]))]
        found.append(".".join(parts) + rng.choice(["", "", "", "."]))
    return [*found, "", ".", "1..2.3.4", "1.2.3.4.", "1234", "1.2.34", "_.1.2.3"]


def _values(kind: str) -> list[str]:
    rng = random.Random(20261125)
    addresses = _addresses(rng, 400)
    if kind == "Ip4Address":
        return addresses
    published = re.compile(_patterns(_published(AUTH_NAMESPACE))["Ip4Address"])
    valid = [a for a in addresses if published.fullmatch(a)]
    between, after = (_RANGE_SIGNS, valid) if kind == "Ip4Range" else (_MASK_SIGNS, _PREFIXES)
    return [
        rng.choice(rng.choice([valid, addresses])) + rng.choice(between) + rng.choice(after) for _ in range(800)
    ] + [rng.choice(addresses) + "-" + rng.choice(addresses) for _ in range(100)]


@pytest.mark.parametrize("kind", ["Ip4Address", "Ip4Range", "Ip4Mask"])
def test_v2_0s_ip_patterns_keep_their_net_meaning(kind: str) -> None:
    published = re.compile(_patterns(_published(AUTH_NAMESPACE))[kind])  # .NET syntax, read by Python as .NET reads it
    values = _values(kind)
    accepted = [v for v in values if published.fullmatch(v)]
    assert len(accepted) > 40 and len(values) - len(accepted) > 40  # both answers are exercised
    for value in values:
        policy = f"<AuthorizationPolicy><AllowedIps><{kind}>{value}</{kind}></AllowedIps></AuthorizationPolicy>"
        valid = not auth_request_errors(_request(AUTH_NAMESPACE, policy=policy))
        assert valid == bool(published.fullmatch(value)), value


@pytest.mark.parametrize("namespace", AUTH_NAMESPACES)
@pytest.mark.parametrize(
    ("context", "valid"),
    [
        # The Ministry's own example (auth/context-identifier-nip-vat-ue.md): no "$" in the value.
        ("<NipVatUe>5265877635-ATU12345678</NipVatUe>", True),
        ("<NipVatUe>5265877635-DE123456789</NipVatUe>", True),
        ("<NipVatUe>5265877635-DE123456789$</NipVatUe>", False),  # what libxml2 reads the published pattern as
        ("<NipVatUe>5265877635-XX123</NipVatUe>", False),
        ("<PeppolId>PPL123456</PeppolId>", True),
        ("<PeppolId>^PPL123456$</PeppolId>", False),
        ("<PeppolId>PPL12345</PeppolId>", False),
        (f"<InternalId>{NIP}-00001</InternalId>", True),
        (f"<Nip>{NIP}</Nip>", True),
        ("<Nip>123</Nip>", False),
    ],
)
def test_context_identifiers_are_read_with_nets_anchors(namespace: str, context: str, valid: bool) -> None:
    assert (auth_request_errors(_request(namespace, context)) == []) is valid


@pytest.mark.parametrize("namespace", AUTH_NAMESPACES)
def test_an_error_names_the_element(namespace: str) -> None:
    errors = auth_request_errors(_request(namespace, "<Nip>123</Nip>"))
    assert len(errors) == 1 and "Nip" in errors[0] and "'123'" in errors[0] and errors[0].startswith("line ")
    wrong = _request(namespace)
    wrong.remove(wrong[0])
    assert "Challenge" in auth_request_errors(wrong)[0]


# --- the SDK's own documents ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context_type", "value"),
    [("Nip", NIP), ("InternalId", f"{NIP}-00001"), ("NipVatUe", f"{NIP}-DE123456789"), ("PeppolId", "PPL123456")],
)
@pytest.mark.parametrize("subject", ["certificateSubject", "certificateFingerprint"])
def test_the_sdks_requests_match_the_shipped_schemas(context_type: str, value: str, subject: str) -> None:
    plain = build_auth_token_request(CHALLENGE, context_type, value, subject)
    assert etree.QName(plain).namespace == AUTH_NAMESPACE
    assert auth_request_errors(plain) == []
    policy = AllowedIps(["192.0.2.1"], ["10.0.0.1-10.0.0.9"], ["172.16.0.0/12"])
    with_policy = build_auth_token_request(CHALLENGE, context_type, value, subject, policy)
    assert etree.QName(with_policy).namespace == AUTH_NAMESPACE_2_1
    assert auth_request_errors(with_policy) == []


def test_the_sdks_largest_policy_matches_the_shipped_schema() -> None:
    policy = AllowedIps(
        [f"192.0.2.{i}" for i in range(10)],
        [f"10.0.{i}.0-10.0.{i}.255" for i in range(10)],
        [f"172.{16 + i}.0.0/16" for i in range(10)],
    )
    assert auth_request_errors(build_auth_token_request(CHALLENGE, "Nip", NIP, allowed_ips=policy)) == []


def test_threads_validate_at_once() -> None:
    documents = [
        _request(namespace, context)
        for namespace in AUTH_NAMESPACES
        for context in (f"<Nip>{NIP}</Nip>", "<Nip>1</Nip>")
    ]
    expected = [auth_request_errors(d) for d in documents]
    failures: list[str] = []

    def work() -> None:
        for _ in range(50):
            for document, errors in zip(documents, expected, strict=True):
                if auth_request_errors(document) != errors:
                    failures.append(etree.tostring(document).decode())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_missing_schema_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make spec"):
        schemas._auth_schema_document(AUTH_NAMESPACE_2_1, tmp_path)
