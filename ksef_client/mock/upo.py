"""UPO v4-3 documents the emulator issues, per invoice and per session page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from ksef_client.mock.keys import emulator_keys
from ksef_client.schemas import FORMS
from ksef_client.xades import SigningCredentials, sign_xades

UPO_NS = "http://upo.schematy.mf.gov.pl/KSeF/v4-3"
RECEIVER = "Ministerstwo Finansów"
CONTEXT_ELEMENTS = {
    "Nip": "Nip",
    "InternalId": "IdWewnetrzny",
    "NipVatUe": "IdZlozonyVatUE",
    "PeppolId": "IdDostawcyUslugPeppol",
}


@dataclass(frozen=True)
class UpoDocument:
    """One ``Dokument`` entry: an accepted invoice."""

    seller_nip: str
    ksef_number: str
    invoice_number: str
    issue_date: str
    received: str
    numbered: str
    invoice_hash: str
    mode: str


@dataclass(frozen=True)
class UpoHeader:
    """What every UPO of a session shares."""

    session_reference_number: str
    context_type: str
    context_value: str
    auth_hash: str
    form_code: str


@dataclass(frozen=True)
class PageInfo:
    """``OpisPotwierdzenia`` of a session UPO page."""

    page: int
    pages: int
    first: int
    last: int
    total: int


def build_upo(
    header: UpoHeader, documents: Sequence[UpoDocument], page: PageInfo | None = None, *, signed: bool = True
) -> bytes:
    """Serialize a UPO; ``page`` is given for session UPOs only, as KSeF does."""
    root = etree.Element(f"{{{UPO_NS}}}Potwierdzenie", nsmap={None: UPO_NS})  # type: ignore[dict-item]
    _text(root, "NazwaPodmiotuPrzyjmujacego", RECEIVER)
    _text(root, "NumerReferencyjnySesji", header.session_reference_number)
    auth = _sub(root, "Uwierzytelnienie")
    _text(_sub(auth, "IdKontekstu"), CONTEXT_ELEMENTS[header.context_type], header.context_value)
    _text(auth, "SkrotDokumentuUwierzytelniajacego", header.auth_hash)
    if page is not None:
        info = _sub(root, "OpisPotwierdzenia")
        numbers: tuple[tuple[str, int], ...] = (
            ("Strona", page.page),
            ("LiczbaStron", page.pages),
            ("ZakresDokumentowOd", page.first),
            ("ZakresDokumentowDo", page.last),
            ("CalkowitaLiczbaDokumentow", page.total),
        )
        for name, number in numbers:
            _text(info, name, str(number))
    _text(root, "NazwaStrukturyLogicznej", structure_name(header.form_code))
    _text(root, "KodFormularza", header.form_code)
    for doc in documents:
        element = _sub(root, "Dokument")
        for name, value in (
            ("NipSprzedawcy", doc.seller_nip),
            ("NumerKSeFDokumentu", doc.ksef_number),
            ("NumerFaktury", doc.invoice_number),
            ("DataWystawieniaFaktury", doc.issue_date),
            ("DataPrzeslaniaDokumentu", doc.received),
            ("DataNadaniaNumeruKSeF", doc.numbered),
            ("SkrotDokumentu", doc.invoice_hash),
            ("TrybWysylki", doc.mode),
        ):
            _text(element, name, value)
    etree.indent(root, space="\t")  # laid out as KSeF's UPOs are (the Ministry's samples): one tab a level
    if not signed:
        return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    # Like KSeF's, the emulator's UPOs carry an enveloped XAdES signature (its own certificate).
    pair = emulator_keys().upo_signing
    return sign_xades(root, SigningCredentials(pair.certificate, pair.private_key))


def structure_name(system_code: str) -> str:
    """``NazwaStrukturyLogicznej`` of a session's form: "Schemat_{systemCode}_v{schemaVersion}.xsd
    (np. Schemat_FA(3)_v1-0E.xsd)" (api-changelog.md, UPO v4-3). The emulator opens sessions for
    the forms of ``FORMS`` only (``system_code_of``), so the system code gives the version."""
    version = next(code.schema_version for code in FORMS.values() if code.system_code == system_code)
    return f"Schemat_{system_code.replace(' ', '')}_v{version}.xsd"


def _sub(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{UPO_NS}}}{name}")


def _text(parent: etree._Element, name: str, value: str) -> None:
    _sub(parent, name).text = value
