"""The parties of an FA(3) invoice: the seller (``Podmiot1``), the buyer (``Podmiot2``) and the
third parties (``Podmiot3``) as ``Party``, ``Contact``, ``Address``, ``TaxpayerStatus``,
``ThirdParty`` and ``ThirdPartyRole``, each checked when made, and written by every builder
(``ksef_client.invoice.builders``, ``ksef_client.invoice.advances``). Import them from
``ksef_client.invoice`` (or ``builders``, as before).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from decimal import Decimal
from enum import IntEnum
from typing import TypeVar

from ksef_client._invoice_models import fa3
from ksef_client.identifiers import (
    INTERNAL_ID_PATTERN,
    is_valid_nip,
    validate_internal_id,
    validate_nip,
)
from ksef_client.invoice.totals import checked_decimal, checked_text, collapsed

_YES = fa3.Twybor1.VALUE_1
_EU = {member.value for member in fa3.TkodyKrajowUe}
_COUNTRIES = {member.value for member in fa3.TkodKraju}
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
