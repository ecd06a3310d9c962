"""Login context identifiers are checked as KSeF's AuthTokenRequest schema checks them (review of
certificate login, finding 4).

KSeF validates the signed document against ``auth/schemy/schemat_auth_v2-0.xsd`` and refuses a value
outside its types ``TIID``, ``TNipVatUE`` and ``TPeppolId`` with 400 / 21401 "Dokument nie jest
zgodny ze schemą (xsd)" (the spec's list for ``POST /auth/xades-signature``), after a challenge. The
SDK used to check only ``value[:10]`` as a NIP (InternalId, NipVatUe) and nothing of a PeppolId.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ksef_client import KSeF
from ksef_client.identifiers import (
    _NIP_VAT_UE,
    _PEPPOL_ID,
    INTERNAL_ID_PATTERN,
    internal_id_check_digit,
    make_internal_id,
    validate_internal_id,
    validate_nip_vat_ue,
    validate_peppol_id,
)
from ksef_client.resources.auth import context_identifier
from ksef_client.testing import self_signed_certificate

NIP = "5265877635"
VALID = [
    ("InternalId", f"{NIP}-12346"),  # the check digit: weights 1, 3, 1, 3, ... modulo 10
    ("InternalId", f"{NIP}-00004"),
    ("InternalId", "6824515772-12343"),  # the spec's worked example ("6824515772-1234" -> 3)
    ("NipVatUe", f"{NIP}-DE123456789"),
    ("NipVatUe", f"{NIP}-ATU12345678"),
    ("NipVatUe", f"{NIP}-FRAB123456789"),
    ("NipVatUe", f"{NIP}-XIGD123"),
    ("PeppolId", "PPL123456"),
]
# The reviewer's values (schema-invalid, accepted before) and a few more edges of the same types.
INVALID = [
    ("InternalId", f"{NIP}-1", "is not an InternalId"),  # TIID: exactly 5 digits after '-'
    ("InternalId", f"{NIP}x12345", "is not an InternalId"),
    ("InternalId", f"{NIP}-123456", "is not an InternalId"),
    ("InternalId", f"{NIP}-12345\n", "is not an InternalId"),
    ("InternalId", f"{NIP}-1234\u0665", "is not an InternalId"),  # an Arabic-Indic 5: ASCII digits only
    ("InternalId", "1234567890-00001", "wrong NIP check digit"),
    # Review of tokens and permissions, finding 7: accepted before; KSeF makes every InternalId with
    # a check digit (POST /permissions/subunits/grants: "Ostatnia cyfra musi być poprawną sumą
    # kontrolną"), so a login to this one could only fail late (415).
    ("InternalId", f"{NIP}-12347", "wrong InternalId check digit"),
    ("InternalId", f"{NIP}-12345", "wrong InternalId check digit"),  # the Ministry's auth XML example
    ("InternalId", f"{NIP}-00001", "wrong InternalId check digit"),
    ("NipVatUe", f"{NIP}-XX123", "is not a NipVatUe"),  # XX is no EU country
    ("NipVatUe", NIP, "is not a NipVatUe"),  # no EU VAT part
    ("NipVatUe", f"{NIP}-DE12345678", "is not a NipVatUe"),  # DE takes 9 digits
    ("NipVatUe", f"{NIP}-de123456789", "is not a NipVatUe"),
    ("NipVatUe", f"{NIP}-PL1234567890", "is not a NipVatUe"),  # not in the schema's list
    ("PeppolId", "not-a-peppol-id", "is not a PeppolId"),  # TPeppolId ^P[A-Z]{2}[0-9]{6}$
    ("PeppolId", "PPL12345", "is not a PeppolId"),
    ("PeppolId", "ppl123456", "is not a PeppolId"),
]


@pytest.mark.parametrize(("kind", "value"), VALID)
def test_schema_valid_context_identifiers_pass(kind: str, value: str) -> None:
    assert context_identifier(None, (kind, value)) == (kind, value)


@pytest.mark.parametrize(("kind", "value", "message"), INVALID)
def test_schema_invalid_context_identifiers_fail_before_any_request(kind: str, value: str, message: str) -> None:
    creds = self_signed_certificate(NIP, kind="seal")
    with KSeF(base_url="http://127.0.0.1:9") as client:  # nothing listens there: nothing may be sent
        with pytest.raises(ValueError, match=f"^context: .*{message}"):
            client.auth.login_with_certificate(creds, context=(kind, value))
        with pytest.raises(ValueError, match=f"^context: .*{message}"):
            client.auth.login_with_token("token", context=(kind, value))
        assert client.send_state.requests_sent == 0


def test_the_error_names_the_expected_form() -> None:
    with pytest.raises(ValueError, match=r"internal_id: '5265877635-1' is not an InternalId .*5265877635-00004"):
        validate_internal_id(f"{NIP}-1")
    with pytest.raises(ValueError, match=r"nip_vat_ue: .* EU VAT number .*5265877635-DE123456789"):
        validate_nip_vat_ue(f"{NIP}-XX123")
    with pytest.raises(ValueError, match=r"peppol_id: .*'P', 2 capital letters and 6 digits"):
        validate_peppol_id("P1")


_SCHEMA_TYPES = {"TIID": INTERNAL_ID_PATTERN, "TNipVatUE": _NIP_VAT_UE, "TPeppolId": _PEPPOL_ID}


@pytest.mark.parametrize("version", ["v2-0", "v2-1"])
def test_patterns_are_the_schemas(ksef_data: Path, version: str) -> None:
    # Verbatim from the Ministry's XSD; ``^``/``$`` (written in two of them: .NET reads them as
    # anchors, XSD proper as characters) are what ``fullmatch`` does.
    xsd = (ksef_data / "xsd" / "auth" / f"schemat_auth_{version}.xsd").read_text(encoding="utf-8")
    for name, pattern in _SCHEMA_TYPES.items():
        found = re.search(rf'<xsd:simpleType name="{name}">.*?<xsd:pattern value="([^"]*)"', xsd, re.S)
        assert found is not None, name
        assert found[1].removeprefix("^").removesuffix("$") == pattern.pattern
        assert pattern.flags & re.ASCII


@pytest.mark.parametrize("component", ["InternalId", "NipVatUe", "PeppolId"])
def test_patterns_agree_with_the_spec(pinned_spec: dict[str, Any], component: str) -> None:
    # The spec writes the same types for the JSON of the token login (NipVatUe without the XSD's groups).
    written = pinned_spec["components"]["schemas"][component]["pattern"]
    spec = re.compile(written.removeprefix("^").removesuffix("$"), re.ASCII)
    ours = {"InternalId": INTERNAL_ID_PATTERN, "NipVatUe": _NIP_VAT_UE, "PeppolId": _PEPPOL_ID}[component]
    values = [v for k, v in VALID if k == component] + [v for k, v, _ in INVALID if k == component]
    assert values
    for value in values:
        assert bool(ours.fullmatch(value)) == bool(spec.fullmatch(value)), value


def test_the_internal_id_check_digit_is_the_specs(pinned_spec: dict[str, Any]) -> None:
    # POST /permissions/subunits/grants: the algorithm and its worked example, verbatim.
    text = pinned_spec["paths"]["/permissions/subunits/grants"]["post"]["description"]
    assert "Algorytm używa naprzemiennych wag (1\u00d7, 3\u00d7, 1\u00d7, 3\u00d7, ...)" in text
    assert '"6824515772-1234" (bez cyfry kontrolnej)' in text and "113 % 10 = 3" in text
    assert internal_id_check_digit("6824515772-1234") == "3"
    assert make_internal_id("6824515772", 1234) == "6824515772-12343"


def test_make_internal_id_composes_what_validate_internal_id_accepts() -> None:
    assert make_internal_id(NIP, 0) == f"{NIP}-00004"
    assert make_internal_id(NIP, "1234") == f"{NIP}-12346"
    for number in range(0, 10_000, 7):
        made = make_internal_id(NIP, number)
        assert validate_internal_id(made) == made
        wrong = made[:-1] + str((int(made[-1]) + 1) % 10)
        with pytest.raises(ValueError, match="wrong InternalId check digit"):
            validate_internal_id(wrong)
    full_width = "\uff11\uff12\uff13\uff14"  # digits to str.isdigit, not to KSeF
    for bad in (-1, 10_000, "123", "12345", True, full_width):
        with pytest.raises(ValueError, match="number"):
            make_internal_id(NIP, bad)
    with pytest.raises(ValueError, match="NIP check digit"):
        make_internal_id("1234567890", 1)
