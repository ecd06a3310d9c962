"""Helpers for tests against KSeF TEST or the emulator: random NIPs and self-signed certificates.

KSeF's TEST environment accepts self-signed certificates for any valid NIP, so a test needs no
real credentials::

    from ksef_client.testing import self_signed_certificate
    creds = self_signed_certificate(kind="seal")          # random valid NIP
    ksef.auth.login_with_certificate(creds, context_nip=creds.nip)
"""

from __future__ import annotations

import datetime as dt
import secrets
import socket
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ksef_client._keys import new_key, self_signed
from ksef_client.identifiers import NIP_WEIGHTS, is_valid_nip, validate_nip
from ksef_client.schemas import FA3_NAMESPACE
from ksef_client.xades import SigningCredentials

WARSAW = ZoneInfo("Europe/Warsaw")


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url``'s host resolves and accepts a TCP connection (live tests skip otherwise)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def random_nip() -> str:
    """A random NIP with a valid check digit (tax office prefix never starts with 0)."""
    while True:
        digits = [secrets.randbelow(9) + 1, *(secrets.randbelow(10) for _ in range(8))]
        check = sum(d * w for d, w in zip(digits, NIP_WEIGHTS, strict=True)) % 11
        if check != 10:
            nip = "".join(map(str, digits)) + str(check)
            if is_valid_nip(nip):
                return nip


@dataclass(frozen=True)
class TestCertificate(SigningCredentials):
    """Signing credentials for a self-signed test certificate, with the NIP it names."""

    __test__ = False  # not a pytest test class
    nip: str = field(default="")

    def certificate_pem(self) -> bytes:
        """The certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self, password: bytes | None = None) -> bytes:
        """The private key in PKCS#8 PEM, encrypted when ``password`` is given."""
        algorithm: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm)

    def pkcs12(self, password: bytes | None = None) -> bytes:
        """Certificate and key as PKCS#12 (.p12) bytes."""
        algorithm: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(b"ksef", self.private_key, self.certificate, None, algorithm)


def _subject(kind: str, nip: str) -> x509.Name:
    if kind == "person":
        attributes = [
            x509.NameAttribute(NameOID.GIVEN_NAME, "Jan"),
            x509.NameAttribute(NameOID.SURNAME, "Testowy"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"TINPL-{nip}"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Jan Testowy"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        ]
    elif kind == "seal":
        attributes = [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Firma testowa {nip}"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Firma testowa {nip}"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        ]
    else:
        raise ValueError(f"kind: {kind!r} is not 'person' or 'seal'")
    return x509.Name(attributes)


def self_signed_certificate(
    nip: str | None = None, kind: str = "person", key_type: str = "rsa", *, valid_days: int = 365
) -> TestCertificate:
    """A self-signed certificate TEST accepts: person (``serialNumber TINPL-<nip>``, given name,
    surname) or seal (``organizationIdentifier VATPL-<nip>``, organization name)."""
    nip = validate_nip(nip, "nip") if nip is not None else random_nip()
    key = new_key(key_type)
    return TestCertificate(self_signed(_subject(kind, nip), key, valid_days), key, nip)


_GROSZ = Decimal("0.01")


def sample_invoice(
    number: str = "FV/1",
    *,
    seller_nip: str = "5265877635",
    buyer_nip: str = "1111111111",
    issue_date: str | dt.date | None = None,
    net: str = "100.00",
    kind: str = "VAT",
    lines: int = 1,
) -> bytes:
    """An FA(3) invoice that validates against the official XSD: 23% VAT, ``lines`` lines of
    ``net`` each (one by default: the smallest valid invoice; 20-50 lines is a typical size)."""
    validate_nip(seller_nip, "seller_nip")
    validate_nip(buyer_nip, "buyer_nip")
    if not 1 <= lines <= 10_000:
        raise ValueError("lines: 1..10000")
    issued = str(issue_date or dt.datetime.now(WARSAW).date())  # today where KSeF counts days
    # Half a grosz up (art. 106e ust. 11; ROUND_HALF_UP, as ksef_client.invoice.totals rounds),
    # not the decimal context's half-to-even: 1.50 at 23% is taxed 0.35, not 0.34.
    line_net = Decimal(net).quantize(_GROSZ, rounding=ROUND_HALF_UP)
    net_value = line_net * lines
    vat = (net_value * Decimal("0.23")).quantize(_GROSZ, rounding=ROUND_HALF_UP)
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = "".join(_line(i, line_net) for i in range(1, lines + 1))
    return _SAMPLE.format(
        ns=FA3_NAMESPACE,
        created=created,
        seller=seller_nip,
        buyer=buyer_nip,
        issued=issued,
        number=escape(number),
        net=net_value,
        vat=vat,
        gross=net_value + vat,
        kind=escape(kind),
        lines=rows,
    ).encode()


_GOODS = ("Usługa doradcza", "Licencja oprogramowania", "Materiały biurowe", "Serwis urządzeń", "Szkolenie")


def _line(index: int, net: Decimal) -> str:
    # Varied text, like real lines, so that a batch of them compresses as real invoices do.
    name = f"{_GOODS[index % len(_GOODS)]} nr {index * 7919 % 100_000:05d}, etap {index}"
    return (
        f"<FaWiersz><NrWierszaFa>{index}</NrWierszaFa><P_7>{name}</P_7><P_8A>szt.</P_8A><P_8B>1</P_8B>"
        f"<P_9A>{net}</P_9A><P_11>{net}</P_11><P_12>23</P_12></FaWiersz>\n"
    )


_SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<Faktura xmlns="{ns}">
<Naglowek><KodFormularza kodSystemowy="FA (3)" wersjaSchemy="1-0E">FA</KodFormularza>
<WariantFormularza>3</WariantFormularza><DataWytworzeniaFa>{created}</DataWytworzeniaFa>
<SystemInfo>ksef_client</SystemInfo></Naglowek>
<Podmiot1><DaneIdentyfikacyjne><NIP>{seller}</NIP><Nazwa>Sprzedawca {seller}</Nazwa></DaneIdentyfikacyjne>
<Adres><KodKraju>PL</KodKraju><AdresL1>ul. Testowa 1, 00-001 Warszawa</AdresL1></Adres></Podmiot1>
<Podmiot2><DaneIdentyfikacyjne><NIP>{buyer}</NIP><Nazwa>Nabywca {buyer}</Nazwa></DaneIdentyfikacyjne>
<Adres><KodKraju>PL</KodKraju><AdresL1>ul. Kupiecka 2, 00-002 Warszawa</AdresL1></Adres>
<JST>2</JST><GV>2</GV></Podmiot2>
<Fa><KodWaluty>PLN</KodWaluty><P_1>{issued}</P_1><P_2>{number}</P_2>
<P_13_1>{net}</P_13_1><P_14_1>{vat}</P_14_1><P_15>{gross}</P_15>
<Adnotacje><P_16>2</P_16><P_17>2</P_17><P_18>2</P_18><P_18A>2</P_18A><Zwolnienie><P_19N>1</P_19N></Zwolnienie>
<NoweSrodkiTransportu><P_22N>1</P_22N></NoweSrodkiTransportu><P_23>2</P_23><PMarzy><P_PMarzyN>1</P_PMarzyN></PMarzy>
</Adnotacje>
<RodzajFaktury>{kind}</RodzajFaktury>
{lines}</Fa>
</Faktura>"""
