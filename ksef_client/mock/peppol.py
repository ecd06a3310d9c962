"""Test data for a Peppol service provider's login to the emulator.

A provider logs in to its ``PeppolId`` context with a XAdES signature made with its own certificate
(uwierzytelnianie.md: "Certyfikat dostawcy usług Peppol - zawierający identyfikator dostawcy"); the
emulator registers it at that first login (api-changelog.md: "przy pierwszym uwierzytelnieniu dostawcy
usług Peppol (z użyciem dedykowanego certyfikatu) następuje jego automatyczna rejestracja"). Which
certificate that is, is the emulator's reading (``ksef_client.mock.state.auth.peppol_id_of``):
a company seal whose ``commonName`` is the PeppolId, as the official clients' tests make it for TEST.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from ksef_client._keys import new_key, self_signed
from ksef_client.identifiers import validate_peppol_id
from ksef_client.xades import SigningCredentials


def peppol_provider_certificate(
    peppol_id: str, name: str = "Dostawca usług Peppol", *, key_type: str = "ec", valid_days: int = 365
) -> SigningCredentials:
    """Self-signed credentials of the Peppol service provider ``peppol_id`` (e.g. ``"PPL123456"``):
    a company seal of organizationName ``name`` with the PeppolId as its commonName and
    organizationIdentifier, the key EC P-256 (``key_type="ec"``) or RSA 2048 (``"rsa"``).

    Log in with it to ``context=("PeppolId", peppol_id)`` (``SubjectIdentifierType``
    ``certificateSubject``, the default): the login may ``PefInvoiceWrite``, and the provider is
    listed by ``GET /peppol/query`` under ``name`` from then on. ``ValueError`` for an identifier the
    spec's pattern refuses, or an unknown ``key_type``.
    """
    validate_peppol_id(peppol_id)
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name: the provider's name, not empty")
    key = new_key(key_type)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, peppol_id),
            x509.NameAttribute(NameOID.COMMON_NAME, peppol_id),
            x509.NameAttribute(NameOID.COUNTRY_NAME, peppol_id[1:3]),
        ]
    )
    return SigningCredentials(self_signed(subject, key, valid_days), key)
