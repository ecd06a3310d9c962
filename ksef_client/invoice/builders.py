"""Builders for the FA(3) invoice kinds: VAT and correction (KOR), with the parties and the
references to corrected invoices every builder shares. The invoices of a sale with advance
payments (ZAL, KOR_ZAL, ROZ, KOR_ROZ and ``AdvanceInvoice``) are built in
``ksef_client.invoice.advances`` and can be imported from here too.

::

    from ksef_client.invoice import Line, Party, vat_invoice

    invoice = vat_invoice(
        number="FV/2026/001", issue_date=date(2026, 3, 2),
        seller=Party("ACME sp. z o.o.", "ul. Prosta 1, 00-001 Warszawa", nip="5265877635"),
        buyer=Party("Nabywca SA", "ul. Krzywa 2, 30-001 Kraków", nip="1111111111"),
        lines=[Line("Konsultacje", Decimal("2"), Decimal("150.00"), rate="23")],
    )
    invoice.to_xml()

Totals (``P_13_x``, ``P_14_x``, ``P_14_xW``, ``P_15``) are computed from the lines by
``ksef_client.invoice.totals``, whose docstring gives each rule and its source. Arguments are
checked before anything is built (``ValueError`` naming the argument); the result is an
``Invoice`` whose XML matches the XSD.

``issue_date`` (``P_1``) may not be later than today in Poland: KSeF refuses an invoice issued
after the day it receives it (faktury/weryfikacja-faktury.md: "Data wystawienia faktury (P_1) nie
może być późniejsza niż data przyjęcia dokumentu do systemu KSeF", invoice status 450). An invoice
built ahead, to be sent on or after its issue date, passes ``allow_future_issue_date=True``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from decimal import Decimal
from enum import IntEnum
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from xsdata.models.datatype import XmlDate, XmlDateTime

from ksef_client._invoice_models import fa3
from ksef_client.identifiers import (
    INTERNAL_ID_PATTERN,
    is_valid_nip,
    validate_internal_id,
    validate_ksef_number,
    validate_nip,
)
from ksef_client.invoice.model import Invoice
from ksef_client.invoice.totals import (
    FIELD_ORDER,
    RATES,
    Line,
    Totals,
    checked_decimal,
    checked_exchange_rate,
    checked_text,
    checked_totals,
    collapsed,
    line_totals,
    rate_of,
    tax_in_pln,
)

FIRST_CREATION_DATE = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)  # FA(3): DataWytworzeniaFa from 2025-09-01
WARSAW_ZONE = "Europe/Warsaw"  # KSeF's days (of issue, of receipt) are Poland's
_EU = {member.value for member in fa3.TkodyKrajowUe}
_COUNTRIES = {member.value for member in fa3.TkodKraju}
_CURRENCIES = {member.value for member in fa3.TkodWaluty}
_NO, _YES = fa3.Twybor12.VALUE_2, fa3.Twybor1.VALUE_1
# TNrVatUE, the number after the country code (FA(3) XSD), with the XSD's \d (Unicode Nd, as re's).
_EU_VAT_NUMBER = re.compile(r"(\d|[A-Z]|\+|\*){1,12}")
# EU VAT prefixes that are not the country's ISO 3166 code.
_VAT_PREFIX_COUNTRY = {"EL": "GR", "XI": "GB"}
# TAdresEmail (ElementarneTypyDanych, etd): an xsd:token of 3..255 characters, pattern "(.)+@(.)+".
# The XSD's "." is any character but a line break, and a collapsed token has none.
_EMAIL = re.compile(r".+@.+")
_MAX_CONTACTS = 3  # DaneKontaktowe maxOccurs="3" in Podmiot1, Podmiot2 and Podmiot3
# PrefiksPodatnika: TKodyKrajowUE with fixed="PL" (FA(3) XSD, Podmiot1): no other value is valid.
_SELLER_VAT_PREFIX = "PL"


_Ids = TypeVar("_Ids", fa3.Tpodmiot2, fa3.Tpodmiot3)


@dataclass(frozen=True)
class Contact:
    """A party's contact details (FA(3) ``DaneKontaktowe``): an e-mail address (``Email``), a phone
    number (``Telefon``), or both (the schema makes each optional; a contact with neither is refused).

    ``email`` is ``TAdresEmail``: 3..255 characters with an ``@`` that has a character before and
    after it. ``phone`` is ``TNumerTelefonu``: 1..16 characters, in any form (``"+48 123 456 789"``
    is 15). Both are ``xsd:token``: whitespace runs count, and are kept, as one space.
    """

    email: str | None = None
    phone: str | None = None

    def __post_init__(self) -> None:
        if self.email is None and self.phone is None:
            # The XSD lets DaneKontaktowe be empty, but an empty one tells the reader nothing.
            raise ValueError("contact: give an email, a phone or both")
        if self.email is not None:
            email = checked_text(self.email, "contact email", 255)
            if len(email) < 3 or not _EMAIL.fullmatch(email):
                raise ValueError(
                    f"contact email: {self.email!r} is not an e-mail address (FA(3) TAdresEmail: 3..255 characters "
                    "with an '@' that has a character before and after it)"
                )
            object.__setattr__(self, "email", email)
        if self.phone is not None:
            object.__setattr__(self, "phone", checked_text(self.phone, "contact phone", 16))


class TaxpayerStatus(IntEnum):
    """FA(3) ``TStatusInfoPodatnika``, the seller's status (``Podmiot1/StatusInfoPodatnika``)."""

    LIQUIDATION = 1  # "Podatnik znajdujący się w stanie likwidacji"
    RESTRUCTURING = 2  # "Podatnik, który jest w trakcie postępowania restrukturyzacyjnego"
    BANKRUPTCY = 3  # "Podatnik znajdujący się w stanie upadłości"
    INHERITANCE_ESTATE = 4  # "Przedsiębiorstwo w spadku": the business of a deceased taxpayer


@dataclass(frozen=True)
class Address:
    """An address as FA(3) ``TAdres`` has it: ``line1`` (``AdresL1``), optionally ``line2``
    (``AdresL2``), each 1..512 characters, and ``country`` (``KodKraju``, an ISO 3166 code of the
    schema's ``TKodKraju``), checked as ``Party``'s own address is. A ``Party``'s
    ``correspondence_address`` (``AdresKoresp``). ``country`` left out (``None``) is the party's
    own country: a German buyer's correspondence address is in Germany unless it says otherwise.
    ``gln`` (keyword-only): the address's Global Location Number (``GLN``, ``TGLN``: 1..13
    characters).
    """

    line1: str
    line2: str | None = None
    country: str | None = None
    _: KW_ONLY
    gln: str | None = None

    def __post_init__(self) -> None:
        checked_text(self.line1, "address line1", 512)
        if self.line2 is not None:
            checked_text(self.line2, "address line2", 512)
        if self.country is not None and self.country not in _COUNTRIES:
            raise ValueError(f"address country: {self.country!r} is not an ISO 3166 code of the schema")
        if self.gln is not None:
            object.__setattr__(self, "gln", _gln(self.gln, "address gln"))

    def _model(self, country: str) -> fa3.Tadres3:
        """``AdresKoresp``; ``country``: the party's, when the address names none."""
        return _tadres(self.country or country, self.line1, self.line2, self.gln)


def _tadres(country: str, line1: str, line2: str | None, gln: str | None) -> fa3.Tadres3:
    """FA(3) ``TAdres`` (a party's ``Adres`` or ``AdresKoresp``) of values already checked."""
    return fa3.Tadres3(kod_kraju=fa3.TkodKraju(country), adres_l1=line1, adres_l2=line2, gln=gln)


def _gln(value: object, name: str) -> str:
    """A Global Location Number as FA(3)'s ``TGLN`` takes it: an ``xsd:token`` of 1..13 characters
    (the schema checks no digits or check digit, and neither does this)."""
    return checked_text(value, name, 13)


@dataclass(frozen=True)
class Party:
    """Seller, buyer or third party: name, address line(s), country, at most one identifier, and
    optionally contact details, a customer number, a correspondence address, an EORI number and
    (the seller) its status and EU VAT prefix.

    ``nip`` (Polish NIP, checked), ``eu_vat`` (an EU VAT number with its country prefix, e.g.
    ``"DE123456789"``: ``KodUE`` + ``NrVatUE``) or ``tax_id`` (any other country's identifier,
    ``KodKraju`` = ``country`` + ``NrID``). A buyer with none of them gets ``BrakID``; the seller
    needs a NIP. With ``eu_vat`` and ``country`` left at ``"PL"``, the address's country is the VAT
    number's (``EL`` -> ``GR``, ``XI`` -> ``GB``): a German buyer's address is in Germany.

    Keyword-only:

    - ``internal_id``: an internal identifier (``IDWew``: the NIP, ``-`` and 5 digits, e.g.
      ``"5265877635-00004"``; its NIP's check digit and its own are checked), which names a
      company's internal unit (a branch) and only a third party (``ThirdParty``): FA(3) has it in
      ``Podmiot3`` alone, so a seller or buyer with one is refused by the builders.
    - ``contacts``: up to 3 ``Contact`` (``DaneKontaktowe``, each an e-mail address and/or a phone
      number), of the seller, the buyer or a third party.
    - ``customer_number``: the number the buyer or a third party is known by in the contract or
      order (``NrKlienta``, 1..256 characters); the seller (``Podmiot1``) has none.
    - ``correspondence_address``: an ``Address`` to write to (``AdresKoresp``), of the seller, the
      buyer or a third party.
    - ``gln``: the Global Location Number of the party's own address (``Adres/GLN``, ``TGLN``:
      1..13 characters).
    - ``eori``: the EORI number (``NrEORI``, the customs identifier; FA(3) types it ``TZnakowy``,
      1..256 characters, and checks no more), of the seller, the buyer or a third party.
    - ``taxpayer_status``: the seller's ``TaxpayerStatus`` (``StatusInfoPodatnika``: in
      liquidation, in restructuring, bankrupt, or an inheritance estate), or its number 1..4.
    - ``vat_prefix``: ``"PL"``, the seller's EU VAT prefix (``PrefiksPodatnika``, "dla przypadków
      określonych w art. 97 ust. 10 pkt 2 i 3 ustawy oraz ... art. 136 ust. 1 pkt 3": intra-EU
      supplies and services); the XSD fixes it to ``PL``, so no other value is taken.

    ``taxpayer_status`` and ``vat_prefix`` are in ``Podmiot1`` alone: the builders refuse a buyer
    with either, and ``ThirdParty`` a third party with either.
    """

    name: str
    address: str
    nip: str | None = None
    eu_vat: str | None = None
    tax_id: str | None = None
    country: str = "PL"
    address2: str | None = None
    _: KW_ONLY
    internal_id: str | None = None
    contacts: Sequence[Contact] = ()
    customer_number: str | None = None
    correspondence_address: Address | None = None
    eori: str | None = None
    taxpayer_status: TaxpayerStatus | int | None = None
    vat_prefix: str | None = None
    gln: str | None = None

    def __post_init__(self) -> None:
        checked_text(self.name, "party name", 512)
        checked_text(self.address, "party address", 512)
        if self.address2 is not None:
            checked_text(self.address2, "party address2", 512)
        if self.country not in _COUNTRIES:
            raise ValueError(f"party country: {self.country!r} is not an ISO 3166 code of the schema")
        if sum(x is not None for x in (self.nip, self.eu_vat, self.tax_id, self.internal_id)) > 1:
            raise ValueError("party: give at most one of nip, eu_vat, tax_id, internal_id")
        if self.nip is not None:
            validate_nip(self.nip, "party nip")
        if self.internal_id is not None:
            object.__setattr__(self, "internal_id", _internal_id(self.internal_id))
        self._check_details()
        if self.eu_vat is not None and (self.eu_vat[:2] not in _EU or not _EU_VAT_NUMBER.fullmatch(self.eu_vat[2:])):
            raise ValueError(
                f"party eu_vat: {self.eu_vat!r} is not an EU country code and 1..12 digits, capital letters, + or *"
            )
        if self.tax_id is not None:
            checked_text(self.tax_id, "party tax_id", 50, token=False)  # NrID: whiteSpace replace, not a token
        if self.eu_vat is not None and self.country == "PL" and self.eu_vat[:2] != "PL":
            prefix = self.eu_vat[:2]
            object.__setattr__(self, "country", _VAT_PREFIX_COUNTRY.get(prefix, prefix))

    def _check_details(self) -> None:
        """The keyword-only details checked (each ``ValueError`` names its argument)."""
        contacts = self.contacts
        if (
            not isinstance(contacts, Sequence)
            or isinstance(contacts, str)
            or not all(isinstance(c, Contact) for c in contacts)
        ):
            raise ValueError("party contacts: expected a sequence of Contact objects (at most 3)")
        object.__setattr__(self, "contacts", tuple(self.contacts))
        if len(self.contacts) > _MAX_CONTACTS:
            raise ValueError(f"party contacts: at most {_MAX_CONTACTS} (DaneKontaktowe), got {len(self.contacts)}")
        if self.customer_number is not None:
            object.__setattr__(
                self, "customer_number", checked_text(self.customer_number, "party customer_number", 256)
            )
        if self.correspondence_address is not None and not isinstance(self.correspondence_address, Address):
            raise ValueError(
                f"party correspondence_address: expected an Address (AdresKoresp), got {self.correspondence_address!r}"
            )
        if self.eori is not None:
            object.__setattr__(self, "eori", checked_text(self.eori, "party eori", 256))  # NrEORI: TZnakowy
        if self.gln is not None:
            object.__setattr__(self, "gln", _gln(self.gln, "party gln"))
        if self.taxpayer_status is not None:
            object.__setattr__(self, "taxpayer_status", _taxpayer_status(self.taxpayer_status))
        if self.vat_prefix is not None and self.vat_prefix != _SELLER_VAT_PREFIX:
            raise ValueError(
                f"party vat_prefix: {self.vat_prefix!r}, but FA(3) fixes PrefiksPodatnika to 'PL' (the seller's "
                "prefix); give 'PL' or leave it out"
            )

    def _address(self) -> fa3.Tadres3:
        return _tadres(self.country, self.address, self.address2, self.gln)

    def _as_seller(self) -> fa3.Faktura.Podmiot1:
        return fa3.Faktura.Podmiot1(
            dane_identyfikacyjne=fa3.Tpodmiot1(nip=_seller_nip(self), nazwa=self.name),
            adres=self._address(),
            adres_koresp=self._correspondence(),
            dane_kontaktowe=_contacts(fa3.Faktura.Podmiot1.DaneKontaktowe, self.contacts),
            prefiks_podatnika=fa3.TkodyKrajowUe(self.vat_prefix) if self.vat_prefix is not None else None,
            nr_eori=self.eori,
            status_info_podatnika=(
                fa3.TstatusInfoPodatnika(int(self.taxpayer_status)) if self.taxpayer_status is not None else None
            ),
        )

    def _correspondence(self) -> fa3.Tadres3 | None:
        address = self.correspondence_address
        return address._model(self.country) if address is not None else None

    def _ids(self, ids: _Ids) -> _Ids:
        if self.nip is not None:
            ids.nip = self.nip
        elif self.internal_id is not None and isinstance(ids, fa3.Tpodmiot3):
            ids.idwew = self.internal_id
        elif self.eu_vat is not None:
            ids.kod_ue, ids.nr_vat_ue = fa3.TkodyKrajowUe(self.eu_vat[:2]), self.eu_vat[2:]
        elif self.tax_id is not None:
            ids.kod_kraju, ids.nr_id = fa3.TkodKraju(self.country), self.tax_id
        else:
            ids.brak_id = _YES
        return ids

    def _as_buyer(self, *, jst: bool = False, gv: bool = False) -> fa3.Faktura.Podmiot2:
        # JST / GV: whether the invoice concerns a local-government subunit / a VAT-group member,
        # each then named in Podmiot3 (roles 8 and 10; ThirdParty). What Podmiot2 cannot have was
        # refused before building (_common: _check_buyer).
        return fa3.Faktura.Podmiot2(
            dane_identyfikacyjne=self._ids(fa3.Tpodmiot2(nazwa=self.name)),
            adres=self._address(),
            adres_koresp=self._correspondence(),
            dane_kontaktowe=_contacts(fa3.Faktura.Podmiot2.DaneKontaktowe, self.contacts),
            nr_eori=self.eori,
            nr_klienta=self.customer_number,
            jst=fa3.Podmiot2Jst.VALUE_1 if jst else fa3.Podmiot2Jst.VALUE_2,
            gv=fa3.Podmiot2Gv.VALUE_1 if gv else fa3.Podmiot2Gv.VALUE_2,
        )


_Contacts = TypeVar(
    "_Contacts",
    fa3.Faktura.Podmiot1.DaneKontaktowe,
    fa3.Faktura.Podmiot2.DaneKontaktowe,
    fa3.Faktura.Podmiot3.DaneKontaktowe,
)


def _contacts(kind: type[_Contacts], contacts: Sequence[Contact]) -> list[_Contacts]:
    """A party's ``DaneKontaktowe`` (each of Podmiot1, 2 and 3 has its own generated class)."""
    return [kind(email=contact.email, telefon=contact.phone) for contact in contacts]


def _internal_id(value: object) -> str:
    """An ``IDWew`` checked: ``TNIPIdWew``'s pattern (an ``xsd:token``: whitespace collapsed), the
    check digit of the NIP it starts with, as ``Party.nip``'s (KSeF's production environment checks
    it too: "Sprawdzenie sumy kontrolnej NIP w identyfikatorze wewnętrznym (InternalId) dla
    Podmiot3", faktury/weryfikacja-faktury.md), and its own last digit: KSeF makes every InternalId
    with one (``identifiers.validate_internal_id``), so an IDWew without it names no unit, and the
    invoice, accepted, would reach nobody."""
    text = collapsed(value) if isinstance(value, str) else None
    if text is None or not INTERNAL_ID_PATTERN.fullmatch(text):  # TNIPIdWew, ASCII digits as nip='s
        raise ValueError(
            f"party internal_id: {value!r} is not an internal identifier (IDWew: a NIP, '-' and 5 digits, "
            "e.g. 5265877635-00004)"
        )
    if not is_valid_nip(text[:10]):
        raise ValueError(f"party internal_id: {value!r} holds a NIP ({text[:10]}) with a wrong check digit")
    return validate_internal_id(text, "party internal_id", nip_check_digit=False)  # its own last digit


def _taxpayer_status(value: object) -> TaxpayerStatus:
    """``Party.taxpayer_status`` checked: a ``TaxpayerStatus`` or its number (``TStatusInfoPodatnika``,
    1..4); not another enum's member that equals one (a ``ThirdPartyRole`` given by mistake)."""
    if isinstance(value, TaxpayerStatus):
        return value
    if type(value) is int and value in set(TaxpayerStatus):
        return TaxpayerStatus(value)
    raise ValueError(
        f"party taxpayer_status: {value!r} is not a TaxpayerStatus (StatusInfoPodatnika 1..4: LIQUIDATION, "
        "RESTRUCTURING, BANKRUPTCY, INHERITANCE_ESTATE)"
    )


def _seller_only(party: Party, role: str) -> None:
    """``ValueError`` for a buyer's or third party's ``taxpayer_status`` / ``vat_prefix``: FA(3) has
    ``StatusInfoPodatnika`` and ``PrefiksPodatnika`` in ``Podmiot1`` alone."""
    if party.taxpayer_status is not None:
        raise ValueError(
            f"{role}: taxpayer_status (StatusInfoPodatnika) is the seller's; FA(3) has it in Podmiot1 alone"
        )
    if party.vat_prefix is not None:
        raise ValueError(f"{role}: vat_prefix (PrefiksPodatnika) is the seller's; FA(3) has it in Podmiot1 alone")


def _seller_nip(seller: Party) -> str:
    """The seller's NIP; ``ValueError`` naming what ``Podmiot1`` cannot have (an ``IDWew``, a
    ``NrKlienta``) or lacks (a NIP)."""
    if seller.internal_id is not None:
        raise ValueError(
            "seller: internal_id (IDWew) names only a third party (FA(3) has it in Podmiot3 alone); the seller "
            "(Podmiot1) is identified by its NIP"
        )
    if seller.nip is None:
        raise ValueError("seller: a NIP is required (Podmiot1 is identified by NIP)")
    if seller.customer_number is not None:
        raise ValueError("seller: customer_number (NrKlienta) is the buyer's or a third party's; Podmiot1 has none")
    return seller.nip


def _check_buyer(buyer: Party) -> None:
    """``ValueError`` for what ``Podmiot2`` cannot have: an ``IDWew``, a ``StatusInfoPodatnika``, a
    ``PrefiksPodatnika``."""
    if buyer.internal_id is not None:
        raise ValueError(
            "buyer: internal_id (IDWew) names only a third party (FA(3) has it in Podmiot3 alone, not in Podmiot2): "
            "give the buyer's own identifier, and name its unit as a ThirdParty (e.g. ThirdPartyRole.RECIPIENT)"
        )
    _seller_only(buyer, "buyer")


class ThirdPartyRole(IntEnum):
    """FA(3) ``TRolaPodmiotu3``, the role of a third party (``Podmiot3/Rola``)."""

    FACTOR = 1  # "Faktor"
    RECIPIENT = 2  # "Odbiorca": a unit, branch... of the buyer that is not itself the buyer
    ORIGINAL_ENTITY = 3  # "Podmiot pierwotny": taken over or transformed, which made the supply
    ADDITIONAL_BUYER = 4  # "Dodatkowy nabywca"
    ISSUER = 5  # "Wystawca faktury": issues the invoice on the taxpayer's behalf
    PAYER = 6  # "Dokonujący płatności": pays in the buyer's place
    JST_ISSUER = 7  # "Jednostka samorządu terytorialnego - wystawca"
    JST_RECIPIENT = 8  # "Jednostka samorządu terytorialnego - odbiorca"
    VAT_GROUP_ISSUER = 9  # "Członek grupy VAT - wystawca"
    VAT_GROUP_RECIPIENT = 10  # "Członek grupy VAT - odbiorca"
    EMPLOYEE = 11  # "Pracownik"


# Roles whose party gets the invoice in KSeF through its NIP: FA(3) XSD, Podmiot2/JST and GV,
# "należy wypełnić sekcję Podmiot3, w szczególności podać NIP lub ID-Wew i określić rolę jako 8"
# (10 for GV). Each sets its flag of Podmiot2.
_FLAGGING_ROLES = {ThirdPartyRole.JST_RECIPIENT: "JST", ThirdPartyRole.VAT_GROUP_RECIPIENT: "GV"}


@dataclass(frozen=True)
class ThirdParty:
    """A third party of the invoice (``Podmiot3``): ``party`` and its ``role``.

    ``role`` is a ``ThirdPartyRole`` (or its number, 1..11), or a text describing another role
    (``RolaInna`` with ``OpisRoli``). ``share``: an additional buyer's (``ADDITIONAL_BUYER``)
    percentage (``Udzial``, 0..100, 2 decimals). A ``JST_RECIPIENT`` (a local-government subunit:
    a school, an office) or a ``VAT_GROUP_RECIPIENT`` needs a NIP or an internal identifier
    (``Party(..., internal_id=...)``, ``IDWew``), and marks the buyer ``JST`` / ``GV`` "1" (the XSD:
    the invoice "dotyczy jednostki podrzędnej JST" / "członka grupy VAT"; "podać NIP lub ID-Wew").
    The party's ``contacts``, ``customer_number``, ``correspondence_address`` and ``eori`` go to
    ``DaneKontaktowe``, ``NrKlienta``, ``AdresKoresp`` and ``NrEORI``; a party with a
    ``taxpayer_status`` or ``vat_prefix`` (the seller's alone) is refused.
    """

    party: Party
    role: ThirdPartyRole | int | str
    share: Decimal | str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.party, Party):
            raise ValueError("third party: expected a Party")
        _seller_only(self.party, "third party")
        if isinstance(self.role, str):
            checked_text(self.role, "third party role", 256)
        elif isinstance(self.role, int) and not isinstance(self.role, bool) and self.role in set(ThirdPartyRole):
            object.__setattr__(self, "role", ThirdPartyRole(self.role))
        else:
            raise ValueError(f"third party role: {self.role!r} is not a ThirdPartyRole (1..11) or a description")
        flag = _FLAGGING_ROLES.get(self.role) if isinstance(self.role, ThirdPartyRole) else None
        if flag is not None and self.party.nip is None and self.party.internal_id is None:
            raise ValueError(
                f"third party: the {flag} recipient (role {int(self.role)}) is named by its NIP or its internal_id "
                '(IDWew; FA(3): "podać NIP lub ID-Wew")'
            )
        if self.share is not None:
            if self.role != ThirdPartyRole.ADDITIONAL_BUYER:
                raise ValueError("third party share: only an ADDITIONAL_BUYER has a share (Udzial)")
            share = checked_decimal(self.share, "third party share", 2)
            if not 0 <= share <= 100:
                raise ValueError(f"third party share: {share} is not a percentage 0..100")
            object.__setattr__(self, "share", share)

    def _model(self) -> fa3.Faktura.Podmiot3:
        third = fa3.Faktura.Podmiot3(
            dane_identyfikacyjne=self.party._ids(fa3.Tpodmiot3(nazwa=self.party.name)),
            adres=self.party._address(),
            adres_koresp=self.party._correspondence(),
            dane_kontaktowe=_contacts(fa3.Faktura.Podmiot3.DaneKontaktowe, self.party.contacts),
            nr_eori=self.party.eori,
            udzial=Decimal(self.share) if self.share is not None else None,
            nr_klienta=self.party.customer_number,
        )
        if isinstance(self.role, str):
            third.rola_inna, third.opis_roli = _YES, collapsed(self.role)
        else:
            third.rola = fa3.TrolaPodmiotu3(int(self.role))
        return third


def _third_parties(third_parties: Sequence[ThirdParty], split_payment: object) -> list[ThirdParty]:
    """``third_parties`` checked (and ``split_payment``, the other option of every builder)."""
    if not isinstance(split_payment, bool):
        raise ValueError(f"split_payment: expected True or False, got {split_payment!r}")
    if isinstance(third_parties, ThirdParty) or not all(isinstance(third, ThirdParty) for third in third_parties):
        raise ValueError("third_parties: expected ThirdParty objects")
    if len(third_parties) > 100:
        raise ValueError("third_parties: at most 100 (Podmiot3)")
    return list(third_parties)


@dataclass(frozen=True)
class CorrectedInvoice:
    """The invoice a correction corrects: its number, issue date, KSeF number (``None``: issued
    outside KSeF, ``NrKSeFN``) and ``lines``, every line it has (``correction`` computes the tax
    differences from them: ``None`` when not known, and ``correction`` then refuses to guess).

    ``currency`` is the corrected invoice's (``KodWaluty``), which the correction keeps: its
    amounts are differences of the corrected invoice's. ``exchange_rate``, in a foreign currency,
    the rate the corrected invoice's tax was converted at (``KursWaluty``), which the correction
    uses unless given another.

    Keyword-only, for a settlement invoice: ``kind`` is ``"VAT"`` (an invoice ``correction``
    corrects, by ``KOR``; the default) or ``"ROZ"`` (a settlement invoice, corrected by
    ``settlement_correction``, ``KOR_ROZ``). A ROZ's ``lines`` are the whole order it settled, and
    its ``totals`` are needed too: its ``P_13_x``/``P_14_x`` (and, in a foreign currency,
    ``P_14_xW``) by field name as it shows them (``{"p_13_1": "500.00", "p_14_1": "115.00"}``,
    as ``Invoice.totals()`` gives them), what remained after the advances; their sum is its
    ``P_15``. A ``P_14_xW`` left out is computed from ``exchange_rate``.
    """

    number: str
    issue_date: dt.date
    ksef_number: str | None = None
    lines: Sequence[Line] | None = field(default=None, repr=False)
    currency: str = "PLN"
    exchange_rate: Decimal | str | None = None
    _: KW_ONLY
    kind: str = "VAT"
    totals: Mapping[str, Decimal | str] | None = field(default=None, repr=False, hash=False)

    def __post_init__(self) -> None:
        checked_text(self.number, "corrected number", 256)
        _date(self.issue_date, "corrected issue_date")
        if self.ksef_number is not None:
            validate_ksef_number(self.ksef_number, "corrected ksef_number")
        if self.lines is not None:
            object.__setattr__(
                self,
                "lines",
                _all_lines(self.lines, "corrected lines", "the corrected invoice's Line objects, all of them"),
            )
        if self.currency not in _CURRENCIES:
            raise ValueError(f"corrected currency: {self.currency!r} is not an ISO 4217 code of the schema")
        rate = checked_exchange_rate(self.exchange_rate, self.currency, taxed=False, name="corrected exchange_rate")
        object.__setattr__(self, "exchange_rate", rate)
        if self.kind not in {"VAT", "ROZ"}:
            raise ValueError(
                f"corrected kind: {self.kind!r}; 'VAT' (corrected by correction(), KOR) or 'ROZ' (a settlement "
                "invoice, corrected by settlement_correction(), KOR_ROZ). An advance invoice (ZAL) is an AdvanceInvoice"
            )
        if self.kind == "ROZ":
            if self.totals is None:
                raise ValueError(
                    "corrected totals: a settlement invoice's P_13_x/P_14_x as it shows them are needed (its "
                    "correction's amounts are differences of them): CorrectedInvoice(..., kind='ROZ', "
                    "totals={'p_13_1': ..., 'p_14_1': ...}), or CorrectedInvoice.of(invoice, ksef_number)"
                )
            shown = _shown_totals(self.totals, self.currency, rate, "corrected totals")
            checked_totals(_as_totals(shown), "corrected totals")  # their sum, P_15 (P_15ZK of its correction)
            object.__setattr__(self, "totals", shown)
        elif self.totals is not None:
            raise ValueError(
                "corrected totals: only a settlement invoice's (kind='ROZ') are used; correction() computes a VAT "
                "invoice's from its lines"
            )

    @classmethod
    def of(cls, invoice: Invoice, ksef_number: str | None = None) -> CorrectedInvoice:
        """The reference to an ``Invoice`` (with the KSeF number it got, if sent), with its
        currency, its exchange rate (the ``KursWaluty`` of its rows, when they all have the same)
        and its lines when they can be read as ``Line`` objects (a VAT or ROZ invoice's
        ``FaWiersz`` rows with quantity, net unit price, rate and a value ``P_11`` that they give).

        A settlement invoice (``ROZ``) gets ``kind="ROZ"`` and its ``totals``, for
        ``settlement_correction``. An advance invoice (``ZAL``) is refused: it is an
        ``AdvanceInvoice`` (``AdvanceInvoice.of``), corrected by ``advance_correction``. So are
        the corrections of advance and settlement invoices (``KOR_ZAL``, ``KOR_ROZ``): the invoice
        corrected again is the ZAL or the ROZ, as the corrections left it.
        """
        if not isinstance(invoice, Invoice):
            raise ValueError(f"invoice: expected an Invoice, got {type(invoice).__name__}")
        refused = _NOT_CORRECTED_INVOICES.get(invoice.kind)
        if refused is not None:
            raise ValueError(f"invoice: {invoice.number!r} is {refused}")
        reference = cls(
            invoice.number, invoice.issue_date, ksef_number, _lines_of(invoice), invoice.currency, _rate_of(invoice)
        )
        if invoice.kind != "ROZ":
            return reference
        _check_gross(invoice, "invoice")
        return replace(reference, kind="ROZ", totals=invoice.totals())

    def _shown(self) -> Totals:
        """A settlement invoice's totals as it shows them (``kind="ROZ"`` only)."""
        assert self.totals is not None  # checked by __post_init__ for a ROZ
        return _as_totals(self.totals)  # type: ignore[arg-type]  # Decimal values since __post_init__


# What CorrectedInvoice.of says of the kinds it refuses (FA(3) TRodzajFaktury: KOR_ZAL "Faktura
# korygująca fakturę dokumentującą otrzymanie zapłaty lub jej części przed dokonaniem czynności",
# KOR_ROZ "Faktura korygująca fakturę wystawioną w związku z art. 106f ust. 3 ustawy").
_NOT_CORRECTED_INVOICES = {
    "ZAL": (
        "an advance invoice (ZAL); it is corrected by advance_correction() (KOR_ZAL), which takes "
        "AdvanceInvoice.of(invoice, ksef_number)"
    ),
    "KOR_ZAL": (
        "a correction of an advance invoice (KOR_ZAL); to correct the advance invoice again, read it with its "
        "corrections: advance_correction(corrected=AdvanceInvoice.of(zal, ksef_number, corrections=[...]))"
    ),
    "KOR_ROZ": (
        "a correction of a settlement invoice (KOR_ROZ); to correct the settlement invoice again, give it as the "
        "correction left it: CorrectedInvoice(number, issue_date, ksef_number, lines=[...], kind='ROZ', "
        "totals={...})"
    ),
}


def _corrected_model(number: str, issued: dt.date, ksef_number: str | None) -> fa3.Faktura.Fa.DaneFaKorygowanej:
    """``DaneFaKorygowanej``: the corrected invoice's date, number and KSeF number (or ``NrKSeFN``)."""
    data = fa3.Faktura.Fa.DaneFaKorygowanej(
        data_wyst_fa_korygowanej=XmlDate.from_date(issued), nr_fa_korygowanej=number
    )
    if ksef_number is not None:
        data.nr_kse_f, data.nr_kse_ffa_korygowanej = _YES, ksef_number
    else:
        data.nr_kse_fn = _YES
    return data


# P_14_x -> its P_13_x, and P_14_xW -> its P_14_x (a tax needs its base, a tax in złoty its tax).
_BASE_OF = {f.tax: f.net for f in RATES.values() if f.tax is not None}
_TAX_OF = {f.tax_pln: f.tax for f in RATES.values() if f.tax is not None and f.tax_pln is not None}


def _shown_totals(values: object, currency: str, exchange_rate: Decimal | None, name: str) -> dict[str, Decimal]:
    """An invoice's ``P_13_x``/``P_14_x``/``P_14_xW`` as given by field name (``Invoice.totals()``'s
    keys), checked: known fields, amounts of 2 decimals, a tax with its base, ``P_14_xW`` only in a
    foreign currency and, left out there, computed from ``exchange_rate`` (``ValueError`` naming
    ``name`` when there is none)."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError(
            f"{name}: the invoice's P_13_x/P_14_x by field name, e.g. {{'p_13_1': '500.00', 'p_14_1': '115.00'}} "
            f"(as Invoice.totals() gives them), got {values!r}"
        )
    amounts: dict[str, Decimal] = {}
    for key, value in values.items():
        if key not in FIELD_ORDER:
            raise ValueError(f"{name}: {key!r} is not a P_13_x/P_14_x/P_14_xW field ({', '.join(FIELD_ORDER)})")
        amounts[key] = checked_decimal(value, f"{name} {key}", 2)
    for key in amounts:
        needed = _BASE_OF.get(key) or _TAX_OF.get(key)
        if needed is not None and needed not in amounts:
            raise ValueError(f"{name}: {key} without {needed}")
        if key in _TAX_OF and currency == "PLN":
            raise ValueError(f"{name}: {key} is the tax in złoty of a foreign-currency invoice; this one is in PLN")
    if currency != "PLN":
        missing = [tax for pln, tax in _TAX_OF.items() if tax in amounts and pln not in amounts]
        if missing and exchange_rate is None:
            raise ValueError(
                f"{name}: {missing[0]}_w, the tax in złoty, is missing and there is no exchange_rate to compute it"
            )
        computed = tax_in_pln(amounts, exchange_rate)
        amounts = {**computed, **amounts}
    return {key: amounts[key] for key in FIELD_ORDER if key in amounts}


def _as_totals(values: Mapping[str, Decimal]) -> Totals:
    """``Totals`` of fields by name: ``P_15`` is every ``P_13_x`` plus every ``P_14_x``."""
    gross = sum((value for key, value in values.items() if not key.endswith("_w")), Decimal("0.00"))
    return Totals(dict(values), gross)


def _check_gross(invoice: Invoice, name: str) -> None:
    """``ValueError`` unless ``P_15`` is the sum of the invoice's ``P_13_x`` and ``P_14_x`` (as the
    builders write it; a settlement or correction is computed from those fields)."""
    total = _as_totals(invoice.totals()).gross
    if total != invoice.gross:
        raise ValueError(
            f"{name}: {invoice.number!r} shows P_15 {invoice.gross}, and its P_13_x and P_14_x add up to {total}; "
            "give the reference by hand with the amounts that apply"
        )


def _lines_of(invoice: Invoice) -> tuple[Line, ...] | None:
    """An invoice's rows as ``Line`` objects; ``None`` if one cannot be read back exactly (or the
    invoice is itself a correction, whose rows are differences)."""
    rows = invoice.model.fa.fa_wiersz
    if not rows or invoice.kind not in {"VAT", "ROZ"}:  # a ROZ's rows: "pełne wartości zamówienia"
        return None
    if any(row.stan_przed is not None for row in rows):
        return None
    lines = [_line_of(row.p_7, row.p_8_a, row.p_8_b, row.p_9_a, row.p_12, row.p_11) for row in rows]
    return None if None in lines else tuple(line for line in lines if line is not None)


def _line_of(
    name: str | None, unit: str | None, quantity: Decimal | None, price: Decimal | None, rate: object, value: object
) -> Line | None:
    """A row (``FaWiersz``, ``ZamowienieWiersz``) as a ``Line``: its name, unit, quantity, net unit
    price and rate; ``None`` if it has no quantity, price or rate, or they do not give its value
    (``P_11``, ``P_11NettoZ``), as a row of gross prices or of differences does not."""
    if quantity is None or price is None or rate is None:
        return None
    try:
        line = Line(name or "", quantity, price, rate_of(rate), unit=unit or "szt.")
    except ValueError:
        return None
    return line if line.net == value else None


def _rate_of(invoice: Invoice) -> Decimal | None:
    """The exchange rate of a foreign-currency invoice's rows (``KursWaluty``), if one for all."""
    if invoice.currency == "PLN":
        return None
    rates = {row.kurs_waluty for row in invoice.model.fa.fa_wiersz if row.kurs_waluty is not None}
    return rates.pop() if len(rates) == 1 else None


# TDataT, the type of every date the builders write (P_1, P_6, DataWystFaKorygowanej): "Data
# zdarzenia w okresie od 2006-01-01 do 2050-01-01" (FA(3) XSD, minInclusive/maxInclusive).
FIRST_DATE, LAST_DATE = dt.date(2006, 1, 1), dt.date(2050, 1, 1)


def _date(value: object, name: str) -> dt.date:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise ValueError(f"{name}: expected a datetime.date, got {value!r}")
    if not FIRST_DATE <= value <= LAST_DATE:
        raise ValueError(f"{name}: {value} is outside the schema's range {FIRST_DATE}..{LAST_DATE}")
    return value


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _issue_date(value: object, allow_future: bool) -> None:
    """``issue_date`` checked: a date in the schema's range, and (unless ``allow_future``) not after
    today in Poland, the earliest day KSeF could receive the invoice: it refuses one whose ``P_1``
    is later than the day of receipt (faktury/weryfikacja-faktury.md, "Walidacja dat", 450)."""
    issued = _date(value, "issue_date")
    # Looked up here, not at import: a machine without a time-zone database (a minimal container)
    # still imports the builders, and only this check needs the zone.
    today = _utc_now().astimezone(ZoneInfo(WARSAW_ZONE)).date()
    if issued > today and not allow_future:
        raise ValueError(
            f"issue_date: {issued} is after today in Poland ({today}); KSeF refuses an invoice issued after "
            "the day it receives it (450). Building it ahead, to send on or after that day? "
            "Pass allow_future_issue_date=True"
        )


def _created(created: dt.datetime | None) -> XmlDateTime:
    moment = created or _utc_now()
    if moment.tzinfo is None:
        raise ValueError("created: a naive datetime; give one with a time zone")
    moment = moment.astimezone(dt.UTC).replace(microsecond=0)
    if moment < FIRST_CREATION_DATE:
        raise ValueError(f"created: {moment} is before 2025-09-01, when FA(3) started")
    return XmlDateTime.from_datetime(moment)


_MAX_ROWS = 10_000  # FaWiersz and ZamowienieWiersz maxOccurs="10000"


def _common(
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    currency: str,
    allow_future_issue_date: bool,
    **lines: object,
) -> tuple[tuple[Line, ...], ...]:
    """The arguments every builder takes checked, the parties before the lines; ``lines``: each
    lines argument by its name (``lines=lines``, ``before=..., after=...``), returned checked
    (``_line_sequence``) in that order, at most 10 000 rows together."""
    checked_text(number, "number", 256)
    _issue_date(issue_date, allow_future_issue_date)
    if not isinstance(seller, Party) or not isinstance(buyer, Party):
        raise ValueError("seller, buyer: expected Party objects")
    _seller_nip(seller)
    _check_buyer(buyer)
    if currency not in _CURRENCIES:
        raise ValueError(f"currency: {currency!r} is not an ISO 4217 code of the schema")
    checked = tuple(_line_sequence(value, name) for name, value in lines.items())
    if sum(map(len, checked)) > _MAX_ROWS:
        raise ValueError(f"{'/'.join(lines)}: at most {_MAX_ROWS} lines")
    return checked


def _line_sequence(value: object, name: str) -> tuple[Line, ...]:
    """A lines argument checked: a sequence of ``Line`` objects (``ValueError`` naming ``name`` for
    a single ``Line``, ``None``, a string or anything else that is not a sequence, and for an item
    that is not a ``Line``)."""
    if isinstance(value, Line | str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{name}: expected a sequence of Line objects, got {type(value).__name__}")
    if not all(isinstance(line, Line) for line in value):
        raise ValueError(f"{name}: expected Line objects")
    return tuple(value)


def _all_lines(value: object, name: str, expected: str) -> tuple[Line, ...]:
    """A reference's lines (a corrected invoice's, an advance invoice's order) checked: at least
    one (``ValueError`` naming ``name``, saying what is ``expected``)."""
    lines = _line_sequence(value, name)
    if not lines:
        raise ValueError(f"{name}: {expected}")
    return lines


def _taxed(lines: Sequence[Line]) -> bool:
    return any(line.fields.tax is not None for line in lines)


def _row(number: int, line: Line, exchange_rate: Decimal | None, *, before: bool = False) -> fa3.Faktura.Fa.FaWiersz:
    return fa3.Faktura.Fa.FaWiersz(
        nr_wiersza_fa=number,
        p_7=line.name,
        p_8_a=line.unit,
        p_8_b=line.quantity,
        p_9_a=line.unit_price,
        p_11=line.net,
        p_12=fa3.TstawkaPodatku(line.rate),
        kurs_waluty=exchange_rate if exchange_rate is not None and line.fields.tax is not None else None,
        stan_przed=_YES if before else None,
    )


# Rates at which the buyer accounts for the tax: FA(3)'s P_18 ("odwrotne obciążenie") is then "1".
_REVERSE_CHARGE = frozenset({"oo", "np II"})


def _annotations(lines: Sequence[Line], exemption: str | None, split_payment: bool = False) -> fa3.Faktura.Fa.Adnotacje:
    """``Adnotacje`` as the lines require: P_18 "1" (reverse charge) with an ``oo`` or ``np II``
    line; with a ``zw`` line P_19 "1" and ``exemption`` (the provision the exemption rests on) in
    P_19A, else P_19N; P_18A "1" with ``split_payment`` ("mechanizm podzielonej płatności");
    no cash accounting, self-billing, new means of transport, simplified triangulation or
    margin scheme."""
    annotations = fa3.Faktura.Fa.Adnotacje
    rates = {line.rate for line in lines}
    if "zw" in rates:
        zwolnienie = annotations.Zwolnienie(p_19=_YES, p_19_a=exemption)
    else:
        zwolnienie = annotations.Zwolnienie(p_19_n=_YES)
    return annotations(
        p_16=_NO,
        p_17=_NO,
        p_18=fa3.Twybor12.VALUE_1 if rates & _REVERSE_CHARGE else _NO,
        p_18_a=fa3.Twybor12.VALUE_1 if split_payment else _NO,
        zwolnienie=zwolnienie,
        nowe_srodki_transportu=annotations.NoweSrodkiTransportu(p_22_n=_YES),
        p_23=_NO,
        pmarzy=annotations.Pmarzy(p_pmarzy_n=_YES),
    )


def _exemption(exemption: str | None, lines: Sequence[Line]) -> str | None:
    """``exemption`` checked: required with a ``zw`` line (FA(3): "Jeśli pole P_19 równa się 1 -
    należy wskazać przepis ustawy..."), refused without one (it would be written nowhere)."""
    exempt = any(line.rate == "zw" for line in lines)
    if exemption is None:
        if exempt:
            raise ValueError(
                'exemption: a "zw" line needs the provision the exemption rests on, e.g. '
                'exemption="art. 43 ust. 1 pkt 19 ustawy o VAT" (written to P_19A)'
            )
        return None
    if not exempt:
        raise ValueError('exemption: only an invoice with a "zw" line is exempt')
    return checked_text(exemption, "exemption", 256)


def _invoice(
    kind: fa3.TrodzajFaktury,
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    currency: str,
    totals: Totals,
    created: dt.datetime | None,
    date: dt.date | None = None,
    annotations: fa3.Faktura.Fa.Adnotacje,
    third_parties: Sequence[ThirdParty] = (),
) -> fa3.Faktura:
    header = fa3.Tnaglowek(
        kod_formularza=fa3.Tnaglowek.KodFormularza(value=fa3.TkodFormularza.FA),
        wariant_formularza=fa3.TnaglowekWariantFormularza.VALUE_3,
        data_wytworzenia_fa=_created(created),
        system_info="ksef_client",
    )
    body = fa3.Faktura.Fa(
        kod_waluty=fa3.TkodWaluty(currency),
        p_1=XmlDate.from_date(issue_date),
        p_2=number,
        p_6=XmlDate.from_date(date) if date is not None and date != issue_date else None,
        p_15=totals.gross,
        adnotacje=annotations,
        rodzaj_faktury=kind,
        **totals.fields,  # type: ignore[arg-type]  # P_13_x / P_14_x / P_14_xW by name
    )
    roles = {third.role for third in third_parties}
    buyer_model = buyer._as_buyer(
        jst=ThirdPartyRole.JST_RECIPIENT in roles, gv=ThirdPartyRole.VAT_GROUP_RECIPIENT in roles
    )
    return fa3.Faktura(
        naglowek=header,
        podmiot1=seller._as_seller(),
        podmiot2=buyer_model,
        podmiot3=[third._model() for third in third_parties],
        fa=body,
    )


def vat_invoice(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    lines: Sequence[Line],
    currency: str = "PLN",
    exchange_rate: Decimal | str | None = None,
    sale_date: dt.date | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A VAT invoice (``RodzajFaktury`` VAT) with totals computed from ``lines``.

    In a foreign ``currency``, ``exchange_rate`` (PLN per unit, up to 6 decimals; required when a
    line is taxed) is written on each taxed line (``KursWaluty``) and gives ``P_14_xW``.
    ``sale_date`` (``P_6``) when it differs from the issue date; ``created`` (``DataWytworzeniaFa``) defaults to now.
    ``exemption``: with a ``"zw"`` line, the provision the exemption rests on (``P_19A``; required).
    An ``"oo"`` or ``"np II"`` line marks the invoice "odwrotne obciążenie" (``P_18``).
    ``issue_date`` (``P_1``) after today in Poland is refused, as KSeF refuses it on receipt,
    unless ``allow_future_issue_date`` (an invoice built ahead, sent on or after that day).

    ``split_payment`` marks the invoice "mechanizm podzielonej płatności" (``P_18A`` "1"). FA(3)
    requires it on an invoice whose amount due exceeds 15 000 zł (or its equivalent), for goods or
    services of annex 15 to the VAT Act supplied to a taxpayer; the builder cannot tell which goods
    are in annex 15, so it is yours to set, and it is not checked. ``third_parties``: the
    ``Podmiot3`` entries (``ThirdParty``, at most 100); a ``JST_RECIPIENT`` or
    ``VAT_GROUP_RECIPIENT`` among them marks the buyer ``JST`` / ``GV`` "1".
    """
    (lines,) = _common(number, issue_date, seller, buyer, currency, allow_future_issue_date, lines=lines)
    if not lines:
        raise ValueError("lines: at least one line")
    basis = _exemption(exemption, lines)
    thirds = _third_parties(third_parties, split_payment)
    rate = checked_exchange_rate(exchange_rate, currency, taxed=_taxed(lines))
    if sale_date is not None:
        _date(sale_date, "sale_date")
    model = _invoice(
        fa3.TrodzajFaktury.VAT, number=number, issue_date=issue_date, seller=seller, buyer=buyer,
        currency=currency, totals=checked_totals(line_totals(lines, rate), "lines"), created=created, date=sale_date,
        annotations=_annotations(lines, basis, split_payment), third_parties=thirds,
    )  # fmt: skip
    model.fa.fa_wiersz = [_row(i, line, rate) for i, line in enumerate(lines, 1)]
    return Invoice(model)


def correction(
    *,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    corrected: CorrectedInvoice,
    before: Sequence[Line],
    after: Sequence[Line],
    reason: str | None = None,
    currency: str | None = None,
    exchange_rate: Decimal | str | None = None,
    created: dt.datetime | None = None,
    exemption: str | None = None,
    allow_future_issue_date: bool = False,
    split_payment: bool = False,
    third_parties: Sequence[ThirdParty] = (),
) -> Invoice:
    """A correction (``KOR``) of a VAT invoice, showing the corrected lines before and after, as
    separate numbered rows (``StanPrzed`` on the "before" rows). An advance invoice (``ZAL``) is
    corrected by ``advance_correction`` (``KOR_ZAL``), a settlement invoice (``ROZ``) by
    ``settlement_correction`` (``KOR_ROZ``): a ``corrected`` of ``kind="ROZ"`` is refused.

    Totals are the differences (art. 106j ust. 2 pkt 5: ``P_13_x``/``P_14_x`` of a correction are
    "kwota różnicy"): each rate the correction touches is totalled over all of the corrected
    invoice's lines at it (``corrected.lines``), as the invoice taxed the rate's sum, once as
    invoiced and once with ``before`` replaced by ``after``. The tax of a rate's sum is not the
    sum of its lines' taxes, so the lines shown alone could be a grosz off: without
    ``corrected.lines`` (``CorrectedInvoice.of(invoice)`` reads them) the correction is refused,
    and each ``before`` line must be one of them.

    ``after`` may be empty (lines removed, or the whole invoice cancelled); ``before`` may be empty
    (lines added). ``exemption``, the reverse charge and ``allow_future_issue_date`` as in
    ``vat_invoice``, over the lines before and after; ``split_payment`` and ``third_parties`` as in
    ``vat_invoice`` (FA(3): a correction's fields are filled "wg stanu po korekcie").

    The correction is in the corrected invoice's currency (``corrected.currency``): FA(3) fills the
    amounts "w walucie, w której wystawiono fakturę" and a correction's amounts "poprzez różnicę",
    so a ``currency`` that differs is refused. In a foreign currency the tax differences are shown
    in złoty too (``P_14_xW``, ``KursWaluty`` on the taxed rows), at ``exchange_rate``, by default
    the corrected invoice's (``corrected.exchange_rate``): both states are converted at the same
    rate, so ``P_14_xW`` is the change of the tax the invoice showed in złoty.
    """
    if not isinstance(corrected, CorrectedInvoice):
        raise ValueError("corrected: expected a CorrectedInvoice (CorrectedInvoice.of(invoice, ksef_number))")
    if corrected.kind == "ROZ":
        raise ValueError(
            f"corrected: {corrected.number!r} is a settlement invoice (ROZ); it is corrected by "
            "settlement_correction() (KOR_ROZ), whose amounts take the advances into account"
        )
    checked = _correction(
        fa3.TrodzajFaktury.KOR, corrected, {"before": before, "after": after}, rate_before=True, number=number,
        issue_date=issue_date, seller=seller, buyer=buyer, currency=currency, reason=reason,
        exchange_rate=exchange_rate, created=created, exemption=exemption,
        allow_future_issue_date=allow_future_issue_date, split_payment=split_payment, third_parties=third_parties,
    )  # fmt: skip
    before, after, rate = checked.before, checked.after, checked.exchange_rate
    if not before and not after:
        raise ValueError("before, after: a correction needs at least one line")
    touched = {line.rate for line in [*before, *after]}
    invoiced = [line for line in _corrected_lines(corrected, before) if line.rate in touched]
    corrected_state = _without(invoiced, before) + list(after)
    totals = checked_totals(line_totals(corrected_state, rate) - line_totals(invoiced, rate), "before/after")
    model = checked.model(totals)
    model.fa.fa_wiersz = checked.rows(rate)
    return Invoice(model)


class _Reference(Protocol):
    """What a correction takes of the invoice it corrects (a ``CorrectedInvoice``, an ``AdvanceInvoice``)."""

    @property
    def number(self) -> str: ...
    @property
    def issue_date(self) -> dt.date: ...
    @property
    def ksef_number(self) -> str | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def exchange_rate(self) -> Decimal | str | None: ...


@dataclass(frozen=True)
class _Correction:
    """A correction (``KOR``, ``KOR_ZAL``, ``KOR_ROZ``) as the arguments every correction builder
    takes leave it, checked by ``_correction``: its lines before and after, its exchange rate,
    and what ``model`` writes besides the amounts."""

    kind: fa3.TrodzajFaktury
    corrected: _Reference
    before: tuple[Line, ...]
    after: tuple[Line, ...]
    exchange_rate: Decimal | None
    number: str
    issue_date: dt.date
    seller: Party
    buyer: Party
    currency: str
    reason: str | None
    created: dt.datetime | None
    exemption: str | None
    split_payment: bool
    third_parties: list[ThirdParty]

    def model(self, totals: Totals) -> fa3.Faktura:
        """The correction with the differences ``totals``, ``PrzyczynaKorekty`` and
        ``DaneFaKorygowanej``; the annotations are over the lines before and after (FA(3): a
        correction's are filled "wg stanu po korekcie", and a line removed still counts)."""
        model = _invoice(
            self.kind, number=self.number, issue_date=self.issue_date, seller=self.seller, buyer=self.buyer,
            currency=self.currency, totals=totals, created=self.created, third_parties=self.third_parties,
            annotations=_annotations([*self.before, *self.after], self.exemption, self.split_payment),
        )  # fmt: skip
        corrected = self.corrected
        model.fa.przyczyna_korekty = self.reason
        model.fa.dane_fa_korygowanej = [_corrected_model(corrected.number, corrected.issue_date, corrected.ksef_number)]
        return model

    def rows(self, rate_before: Decimal | None) -> list[fa3.Faktura.Fa.FaWiersz]:
        """``FaWiersz``: the lines before the correction (``StanPrzed``, at ``rate_before``), then
        after it (at the correction's rate), as separate numbered rows."""
        rows = [_row(i, line, rate_before, before=True) for i, line in enumerate(self.before, 1)]
        return rows + [_row(i, line, self.exchange_rate) for i, line in enumerate(self.after, len(rows) + 1)]


def _correction(
    kind: fa3.TrodzajFaktury,
    corrected: _Reference,
    lines: Mapping[str, object],
    *,
    rate_before: bool,
    number: str,
    issue_date: dt.date,
    seller: Party,
    buyer: Party,
    currency: str | None,
    reason: str | None,
    exchange_rate: Decimal | str | None,
    created: dt.datetime | None,
    exemption: str | None,
    allow_future_issue_date: bool,
    split_payment: bool,
    third_parties: Sequence[ThirdParty],
) -> _Correction:
    """The arguments every correction builder takes, checked (``ValueError`` naming each):
    ``lines``, the lines before the correction and those after, each by its argument's name; the
    currency (the corrected invoice's, ``_correction_currency``); the exchange rate (default: the
    corrected invoice's), required when the lines after it are taxed, or those before too with
    ``rate_before`` (a ``KOR`` converts both states at it); the reason; and what every builder
    checks (``_common``, ``_exemption`` over the lines before and after, ``_third_parties``)."""
    currency = _correction_currency(currency, corrected.currency, type(corrected).__name__)
    before, after = _common(number, issue_date, seller, buyer, currency, allow_future_issue_date, **lines)
    basis = _exemption(exemption, [*before, *after])
    thirds = _third_parties(third_parties, split_payment)
    if reason is not None:
        checked_text(reason, "reason", 256)
    rate = corrected.exchange_rate if exchange_rate is None else exchange_rate
    rate = checked_exchange_rate(rate, currency, taxed=_taxed([*before, *after] if rate_before else after))
    return _Correction(
        kind=kind, corrected=corrected, before=before, after=after, exchange_rate=rate, number=number,
        issue_date=issue_date, seller=seller, buyer=buyer, currency=currency, reason=reason, created=created,
        exemption=basis, split_payment=split_payment, third_parties=thirds,
    )  # fmt: skip


def _correction_currency(currency: str | None, corrected: str, reference: str) -> str:
    """The correction's currency: the corrected invoice's, ``corrected`` (FA(3), ``Fa``: "Pola
    dotyczące wartości sprzedaży i podatku wypełnia się w walucie, w której wystawiono fakturę ... W
    przypadku wystawienia faktury korygującej ... pola dotyczące podstaw opodatkowania, podatku oraz
    należności ogółem wypełnia się poprzez różnicę"): a difference of EUR amounts is in EUR."""
    if currency is None or currency == corrected:
        return corrected
    raise ValueError(
        f"currency: {currency!r}, but the corrected invoice is in {corrected} (corrected.currency); a "
        "correction's amounts are differences of the corrected invoice's, in its currency. A foreign-currency "
        f"invoice read with {reference}.of keeps its currency; else {reference}(..., currency={currency!r})"
    )


def _corrected_lines(corrected: CorrectedInvoice, before: Sequence[Line]) -> Sequence[Line]:
    if corrected.lines is None:
        raise ValueError(
            "corrected: every line of the corrected invoice is needed (each rate's tax is computed on the sum of "
            "all its lines), and corrected.lines is None. CorrectedInvoice.of(invoice) reads them only from a VAT "
            "invoice whose every row has P_7, P_8B, a net unit price P_9A and P_12, and a P_11 of P_8B x P_9A "
            "rounded; for any other, give them: CorrectedInvoice(..., lines=[...])"
        )
    _without(corrected.lines, before)  # each "before" line is one of them
    return corrected.lines


def _without(lines: Sequence[Line], removed: Sequence[Line]) -> list[Line]:
    """``lines`` less each of ``removed`` (once each); ``ValueError`` for one that is not there."""
    left = list(lines)
    for line in removed:
        if line not in left:
            raise ValueError(
                f"before: {line} is not a line of the corrected invoice (corrected.lines; names and units are "
                "compared with their whitespace collapsed, as the schema's xsd:token compares them)"
            )
        left.remove(line)
    return left


# The builders of a sale with advance payments live in their own module, which builds on the
# helpers above; they are imported here last (that module imports this one), so that
# ``from ksef_client.invoice.builders import advance`` works as it did before they moved.
from ksef_client.invoice.advances import (  # noqa: E402
    AdvanceInvoice,
    advance,
    advance_correction,
    settlement,
    settlement_correction,
)

__all__ = [
    "Address",
    "AdvanceInvoice",
    "Contact",
    "CorrectedInvoice",
    "Party",
    "TaxpayerStatus",
    "ThirdParty",
    "ThirdPartyRole",
    "advance",
    "advance_correction",
    "correction",
    "settlement",
    "settlement_correction",
    "vat_invoice",
]
