"""Permission grant bodies and query filters: built from keyword arguments, checked before sending.

What the spec's JSON Schema says (required fields, the permission and identifier-type enums, the
lengths: ``description`` 5-256, names, ...) is checked against the shipped spec itself
(``_query_filters.checked_against``), never copied here. What the spec writes only in prose is
checked here, each rule citing its source:

- every ``permissions`` list: "Lista nadawanych uprawnień. Każda wartość może wystąpić tylko raz.",
  and not empty (the Ministry's C# client);
- ``subjectDetails``: the data its ``subjectDetailsType`` needs ("Wymagane, gdy subjectDetailsType
  = ..."); a type that does not fit the subject's identifier by the types' own descriptions is only
  logged as a warning (no source says KSeF refuses it);
- every identifier by its ``type``: a NIP in its form (not its check digit), a PESEL in the spec's form, an
  ``InternalId`` with its own check digit, a certificate fingerprint (SHA-256, 64 hex digits,
  sent in upper case), a ``NipVatUe``, a ``PeppolId``; ``AllPartners`` and ``System`` without a value;
- ``subunitName`` for a subunit named by an ``InternalId``; an identity document's country (an ISO 3166-1 alpha-2 code).

Anything wrong is a ``ValueError`` naming the field, raised before any request is sent.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ksef_client._countries import ISO_3166_ALPHA2
from ksef_client._query_filters import checked_against
from ksef_client.identifiers import validate_internal_id, validate_nip, validate_nip_vat_ue, validate_peppol_id
from ksef_client.spec_version import pinned_schemas

log = logging.getLogger("ksef_client")

# A grant's subject, target or context: ``("Pesel", "90010112349")``, a dict ``{"type", "value"}``
# as the API names it, or the generated model.
Identifier = tuple[str, str | None] | Mapping[str, Any] | Any

# uprawnienia.md, "Fingerprint | Wynik obliczenia funkcji skrótu SHA-256 na certyfikacie
# kwalifikowanym": 32 bytes, 64 hex digits (the EU grants' schemas: minLength = maxLength = 64).
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{64}", re.ASCII)
# The spec's PermissionId: 36 characters; its example "0c9a72e8-f344-457f-9c16-7c640eb60242" is a
# GUID, and the id goes into the DELETE's path.
_PERMISSION_ID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}", re.ASCII)

# "W przypadku typu AllPartners należy pozostawić puste. W pozostałych przypadkach pole jest
# wymagane." (the target identifiers); "W przypadku typu System należy pozostawić puste."
# (PersonPermissionsAuthorIdentifier).
_WITHOUT_VALUE = frozenset({"AllPartners", "System"})

# PersonPermissionSubjectDetails, EuEntityPermissionSubjectDetails: each field is "Wymagane, gdy
# subjectDetailsType = <its type>".
SUBJECT_DETAILS_FIELDS = {
    "PersonByIdentifier": "personById",
    "PersonByFingerprintWithIdentifier": "personByFpWithId",
    "PersonByFingerprintWithoutIdentifier": "personByFpNoId",
    "EntityByFingerprint": "entityByFp",
}
# The types' descriptions (PersonPermissionSubjectDetailsType): "PersonByIdentifier | Osoba fizyczna
# posługująca się Profilem Zaufanym lub certyfikatem zawierającym identyfikator NIP lub PESEL", the
# two PersonByFingerprint... types "posługująca się certyfikatem niezawierającym identyfikatora NIP
# ani PESEL"; the guide's Fingerprint row: "Wykorzystywane w sytuacji, gdy certyfikat kwalifikowany
# nie zawiera identyfikatora NIP ani PESEL" (uprawnienia.md). So a subject named by NIP or PESEL is
# most likely PersonByIdentifier, one named by a fingerprint not. That is our reading: the
# descriptions say who the person is, neither the spec nor the guide says KSeF refuses another
# pairing, and the Ministry's clients do not check it. A pairing against it is therefore logged as a
# warning (a likely mistake) and sent, not refused.
_DETAILS_FOR_SUBJECT = {
    "Nip": frozenset({"PersonByIdentifier"}),
    "Pesel": frozenset({"PersonByIdentifier"}),
    "Fingerprint": frozenset(SUBJECT_DETAILS_FIELDS) - {"PersonByIdentifier"},
}


def plain(value: Any) -> Any:
    """``value`` as JSON: generated models by their ``to_dict()``, enum members by their value, a
    ``datetime.date`` as its ISO form."""
    if hasattr(value, "to_dict") and hasattr(value, "additional_properties"):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()  # birthDate: "format": "date"
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def identifier(value: Identifier, field: str) -> Any:
    """An identifier as the API sends it: ``(type, value)`` becomes ``{"type": ..., "value": ...}``
    (no ``value`` when it is ``None``: ``("AllPartners", None)``)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"{field}: give (type, value), e.g. ('Nip', '5265877635'); got {value!r}")
        kind, text = value
        return {"type": plain(kind)} if text is None else {"type": plain(kind), "value": text}
    return plain(value)


def body_of(request: Any, model: type[Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body as JSON: the generated ``request`` (a ``model``), or else ``fields`` (API names;
    ``None`` left out). Both at once is a ``ValueError``: one would silently win."""
    given = {key: value for key, value in fields.items() if value is not None}
    if request is None:
        return given
    if given:
        raise ValueError(f"give either a {model.__name__} or keyword arguments, not both ({', '.join(given)})")
    if not isinstance(request, model):
        raise ValueError(f"expected a {model.__name__}, got {type(request).__name__}")
    body: dict[str, Any] = request.to_dict()
    return body


def checked_body(schema_name: str, body: dict[str, Any], path: str) -> dict[str, Any]:
    """``body`` checked against the spec's ``schema_name`` and the rules of its descriptions."""
    checked: dict[str, Any] = checked_against(body, schema_name, path)
    _no_repeats(checked, path)
    _subject_details(checked, path)
    _identifiers(checked, path)
    _documents(checked, path)
    return checked


def checked_grant(schema_name: str, body: dict[str, Any], path: str) -> dict[str, Any]:
    """A grant body checked (``checked_body``) plus the subunit grant's ``subunitName`` rule."""
    checked = checked_body(schema_name, body, path)
    # An empty "Lista nadawanych uprawnień" grants nothing. The spec's arrays have no minItems, but
    # the Ministry's C# client refuses it before sending ("Należy podać co najmniej jedno
    # uprawnienie.", the grant builders' WithPermissions), and so does the emulator (21405).
    if checked.get("permissions") == []:
        raise ValueError(f"{path}.permissions: give at least one permission to grant")
    context = checked.get("contextIdentifier")
    # SubunitPermissionsGrantRequest.subunitName: "W przypadku jednostki podrzędnej z identyfikatorem
    # wewnętrznym pole jest wymagane."
    by_internal_id = isinstance(context, dict) and context.get("type") == "InternalId"
    if schema_name == "SubunitPermissionsGrantRequest" and by_internal_id and not checked.get("subunitName"):
        raise ValueError(f"{path}.subunitName: required for a subunit named by an InternalId (the spec)")
    return checked


def _no_repeats(body: dict[str, Any], path: str) -> None:
    # "Lista nadawanych uprawnień. Każda wartość może wystąpić tylko raz." (every grant request)
    values = [p.get("type") if isinstance(p, dict) else p for p in body.get("permissions") or []]
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{path}.permissions: {', '.join(repeated)} given more than once (each value only once)")


def _subject_details(body: dict[str, Any], path: str) -> None:
    details = body.get("subjectDetails")
    if not isinstance(details, dict) or "subjectDetailsType" not in details:
        return  # EntityDetails (fullName), no type
    kind = details["subjectDetailsType"]
    needed = SUBJECT_DETAILS_FIELDS[kind]
    if details.get(needed) is None:
        raise ValueError(f"{path}.subjectDetails.{needed}: required when subjectDetailsType is {kind} (the spec)")
    subject = body.get("subjectIdentifier") or {}
    fitting = _DETAILS_FOR_SUBJECT.get(str(subject.get("type")))
    if fitting is not None and kind not in fitting:
        log.warning(
            "%s.subjectDetails.subjectDetailsType: %s is unusual for a subject named by %s (the types' "
            "descriptions suggest %s); sent as given",
            path, kind, subject.get("type"), " or ".join(sorted(fitting)),
        )  # fmt: skip


def _identifiers(value: Any, path: str) -> None:
    """Every ``{"type", "value"}`` under a key ending in ``Identifier`` (or ``identifier``) checked by its type."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            _identifiers(item, f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        here = f"{path}.{key}"
        if (key == "identifier" or key.endswith("Identifier")) and isinstance(item, dict) and "type" in item:
            check_identifier(str(item["type"]), item.get("value"), f"{here}.value")
            if item["type"] == "Fingerprint":
                item["value"] = upper_fingerprint(item["value"])
        _identifiers(item, here)


def check_identifier(kind: str, value: Any, field: str) -> None:
    """``ValueError`` unless ``value`` is a valid identifier of type ``kind``."""
    if kind in _WITHOUT_VALUE:
        if value:
            raise ValueError(f"{field}: a {kind} identifier has no value (the spec: 'należy pozostawić puste')")
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: a {kind} identifier needs its value")
    # A NIP (alone, or inside an InternalId or a NipVatUe) in its form only, not its check digit.
    # The spec's Nip is a pattern alone ("10 cyfrowy numer NIP", ^[1-9]((\d[1-9])|([1-9]\d))\d{7}$);
    # the guide names NIP check digits only for invoices, and on production alone ("Dodano
    # weryfikację sumy kontrolnej NIP dla: Podmiot1, Podmiot2, Podmiot3 [...] - dotyczy tylko
    # środowiska produkcyjnego", api-changelog.md), and tells testers "Do testów należy używać
    # losowych identyfikatorów NIP" (srodowiska.md): no source has KSeF refuse a permission for
    # it. The InternalId's own last digit is KSeF's rule ("Wprowadzono walidację sumy kontrolnej
    # dla identyfikatora InternalId w POST /permissions/subunits/grants", api-changelog.md 2.0.0).
    if kind == "Nip":
        validate_nip(value, field, check_digit=False)
    elif kind == "Pesel":
        pesel = pinned_schemas()["Pesel"]["pattern"]
        if not re.fullmatch(pesel, value, re.ASCII):
            raise ValueError(f"{field}: {value!r} is not a PESEL (11 digits; the spec's pattern {pesel})")
    elif kind == "Fingerprint":
        if not _FINGERPRINT.fullmatch(value):
            raise ValueError(f"{field}: {value!r} is not a certificate fingerprint (SHA-256: 64 hex digits)")
    elif kind == "InternalId":
        validate_internal_id(value, field, nip_check_digit=False)
    elif kind == "NipVatUe":
        validate_nip_vat_ue(value, field, nip_check_digit=False)
    elif kind == "PeppolId":
        validate_peppol_id(value, field)


def upper_fingerprint(value: Any) -> Any:
    """A certificate fingerprint in upper case, as the Ministry's clients send it: C#
    ``CertificateUtils.GetSha256Fingerprint`` (``ToUpperInvariant()``; its validator
    ``CertificateFingerPrintSha256Pattern = ^[0-9A-F]{64}$`` refuses lower case), Java
    ``DefaultCertificateService.getSha256Fingerprint`` (``%02X``), and every example of the spec.
    ``hashlib``'s ``hexdigest()`` is lower case; whether KSeF matches a lower-case grant to the
    certificate at login is not documented, so nothing is left to that."""
    return value.upper() if isinstance(value, str) else value


def _documents(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "idDocument" and isinstance(item, dict):
                country = item.get("country")
                # IdDocument.country: "Musi być zgodny z ISO 3166-1 alpha-2 (np. PL, DE, US) oraz
                # zawierać dokładnie 2 wielkie litery." (``_countries``: "EL" and "UK" are not ISO's)
                if country not in ISO_3166_ALPHA2:
                    raise ValueError(
                        f"{path}.{key}.country: {country!r} is not an ISO 3166-1 alpha-2 country code "
                        "(2 capital letters: PL, DE, GR, GB, ...; the spec)"
                    )
            _documents(item, f"{path}.{key}")


def check_permission_id(permission_id: str) -> str:
    """``ValueError`` unless ``permission_id`` is a permission's id (a GUID: the spec's 36 characters)."""
    if not isinstance(permission_id, str) or not _PERMISSION_ID.fullmatch(permission_id):
        raise ValueError(
            f"permission_id: {permission_id!r} is not a permission id (36 characters, a GUID such as "
            "0c9a72e8-f344-457f-9c16-7c640eb60242, as the queries list it)"
        )
    return permission_id


def listed(values: Iterable[Any], field: str) -> list[Any]:
    """``values`` (any iterable: a list, a tuple, a set, a generator, ``dict.keys()``) as a JSON
    list. A string, bytes or a mapping is a ``ValueError``: each is iterable too, but what it
    yields (the letters of ``"InvoiceRead"``, a dict's keys) is not a list of permissions."""
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise ValueError(f"{field}: expected a list, got {type(values).__name__} {values!r:.60}")
    return [plain(value) for value in values]


def entity_permissions(permissions: Iterable[Any], can_delegate: Iterable[str]) -> list[Any]:
    """An entity grant's ``permissions``: names become ``{"type": name, "canDelegate": ...}``
    (``canDelegate`` true for those in ``can_delegate``); dicts and models are taken as they are."""
    delegable = set(listed(can_delegate, "can_delegate"))
    items = listed(permissions, "permissions")
    if delegable and not all(isinstance(p, str) for p in items):
        # A dict or model is sent as it is: can_delegate would be dropped for it without a word.
        raise ValueError(
            "can_delegate: give the permissions as names with it; a permission given as a dict or model"
            " carries its own canDelegate"
        )
    unknown = delegable - {p for p in items if isinstance(p, str)}
    if unknown:
        raise ValueError(f"can_delegate: {sorted(unknown)} not among the permissions granted")
    return [{"type": p, "canDelegate": p in delegable} if isinstance(p, str) else p for p in items]
