"""XAdES authentication documents: build and sign ``AuthTokenRequest``, verify it (emulator side).

signxml does the XML-DSig work. The signature is enveloped XAdES-BES with SHA-256 and inclusive
C14N 1.0: KSeF's verifier is .NET, which knows C14N 1.0 but not C14N 1.1 (signxml's default), and
signxml's exclusive C14N breaks the digest of its own SignedProperties.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from ksef_client import _keys
from ksef_client._durable import write_durably
from ksef_client._keys import check_key_matches
from ksef_client._xml import declares_entities, parse

AUTH_NAMESPACE = "http://ksef.mf.gov.pl/auth/token/2.0"
# Schema 2.1 differs from 2.0 only in the AllowedIps patterns: 2.0's ("^...\\b...$") are no valid
# XSD regular expressions (libxml2 refuses to compile that schema as published; schemas.auth_schema
# compiles it as KSeF's .NET reads it), and api-changelog.md 2.5.0 updated them in 2.1 "aby były
# zgodne z typowymi parserami". A request with a policy is 2.1, whose IP patterns any validator reads alike.
AUTH_NAMESPACE_2_1 = "http://ksef.mf.gov.pl/auth/token/2.1"
AUTH_NAMESPACES = (AUTH_NAMESPACE, AUTH_NAMESPACE_2_1)
DSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
C14N_1_0 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
CONTEXT_TYPES = ("Nip", "InternalId", "NipVatUe", "PeppolId")
SUBJECT_IDENTIFIER_TYPES = ("certificateSubject", "certificateFingerprint")
# Public-key methods only: an HMAC "signature" proves nothing about the certificate.
_DSIG = "http://www.w3.org/2000/09/xmldsig#"
_ACCEPTED = XAdESSignatureConfiguration(
    expect_references=True,
    signature_methods=frozenset(
        {
            SignatureMethod.RSA_SHA256,
            SignatureMethod.RSA_SHA384,
            SignatureMethod.RSA_SHA512,
            SignatureMethod.SHA256_RSA_MGF1,
            SignatureMethod.SHA384_RSA_MGF1,
            SignatureMethod.SHA512_RSA_MGF1,
            SignatureMethod.ECDSA_SHA256,
            SignatureMethod.ECDSA_SHA384,
            SignatureMethod.ECDSA_SHA512,
        }
    ),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}),
)


PrivateKey = _keys.PrivateKey  # the type of a signing key (RSA or EC)


@dataclass(frozen=True)
class SigningCredentials:
    """A certificate and its private key (RSA >= 2048 or EC P-256); the key is never shown."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
            raise ValueError("signing key: KSeF needs RSA keys of at least 2048 bits")
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size < 256:
            raise ValueError("signing key: KSeF needs EC keys of at least 256 bits")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("signing key: only RSA and EC keys are supported")
        check_key_matches(self.certificate, key)

    @classmethod
    def from_pem(
        cls, certificate: bytes | str | Path, private_key: bytes | str | Path, password: bytes | str | None = None
    ) -> SigningCredentials:
        """From PEM data or PEM files (the key may be password-protected): each of ``certificate``
        and ``private_key`` is bytes, PEM text (a ``str`` holding its ``-----BEGIN`` line) or the path
        of a file (a ``str`` or ``Path``). A ``str`` that is neither PEM text nor an existing file's
        path is a ``ValueError`` that does not repeat it (it may be the key itself)."""
        cert = x509.load_pem_x509_certificate(_read(certificate, "certificate", _PEM_CERTIFICATE))
        key = load_pem_private_key(_read(private_key, "private_key", _PEM_KEY), _bytes(password))
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("private_key: only RSA and EC keys are supported")
        return cls(cert, key)

    @classmethod
    def from_pkcs12(cls, data: bytes | str | Path, password: bytes | str | None = None) -> SigningCredentials:
        """From a PKCS#12 (.p12/.pfx) file (its path, a ``str`` or ``Path``) or its bytes. A ``str``
        that is not an existing file's path (e.g. the file as base64 text: decode it first) is a
        ``ValueError`` that does not repeat it (it may be the secret itself)."""
        key, cert, _ = pkcs12.load_key_and_certificates(_read(data, "data", _PKCS12), _bytes(password))
        if cert is None or key is None:
            raise ValueError("PKCS#12: the file holds no certificate with its private key")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("PKCS#12: only RSA and EC keys are supported")
        return cls(cert, key)

    def to_pkcs12(self, password: bytes | str) -> bytes:
        """The certificate and its key as PKCS#12 (.p12) bytes, the key encrypted with ``password``
        (required and not empty: a key is never written out in the clear). Read them back with
        ``SigningCredentials.from_pkcs12(data, password)``."""
        secret = _bytes(password)
        if not secret:
            raise ValueError("password: required (not empty); the private key is never saved unencrypted")
        encryption = serialization.BestAvailableEncryption(secret)
        return pkcs12.serialize_key_and_certificates(b"ksef", self.private_key, self.certificate, None, encryption)

    def save(self, path: str | Path, password: bytes | str) -> Path:
        """Write ``to_pkcs12(password)`` to ``path`` (a ``.p12`` file), readable and writable by its
        owner only on POSIX systems; the path written. Atomic and durable (``write_durably``: a
        new file of mode 0600 beside it, flushed to disk, then renamed over ``path``), so a save
        that fails half-way leaves the file that was there whole, and a symbolic link at ``path``
        is replaced, not written through."""
        target = Path(path)
        write_durably(target, self.to_pkcs12(password))
        return target


_PEM_CERTIFICATE = "a path of an existing PEM file, PEM text (-----BEGIN CERTIFICATE-----) or its bytes"
_PEM_KEY = "a path of an existing PEM file, PEM text (-----BEGIN ... PRIVATE KEY-----) or its bytes"
_PKCS12 = "a path of an existing .p12/.pfx file or its bytes (base64 text: decode it first, base64.b64decode)"


def _read(value: bytes | str | Path, field: str, expected: str) -> bytes:
    """The bytes of ``value``: bytes as they are, PEM text (a ``str`` with a ``-----BEGIN`` line,
    after any text such as openssl's "Bag Attributes") encoded, else the file it names. A ``str``
    that is neither PEM text nor the path of an existing file (a base64 ``.p12``, a PEM whose first
    line was lost) is a ``ValueError`` saying what ``field`` expects (``expected``) without
    repeating the value: it may be the secret itself, and an ``OSError`` would carry it whole as
    its file name into messages, tracebacks and logs."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        if "-----BEGIN" in value:
            return value.encode()
        # exists, not isfile: /dev/stdin, /dev/fd/N (a shell's <(...)) and named pipes are paths to
        # read too. False for any name the OS refuses (too long, a NUL, ...).
        if not os.path.exists(value):
            raise ValueError(
                f"{field}: a str of {len(value)} characters that is neither PEM text nor the path of an existing "
                f"file (not repeated here: it may be a secret); expected {expected}"
            )
        return Path(value).read_bytes()
    if isinstance(value, os.PathLike):
        return Path(value).read_bytes()
    raise TypeError(f"{field}: expected {expected}, got {type(value).__name__}")


def _bytes(password: bytes | str | None) -> bytes | None:
    return password.encode() if isinstance(password, str) else password


# --- AuthorizationPolicy: where the login's tokens may be used from -----------------------------

MAX_ALLOWED_IPS = 10  # of each kind: the XSD's maxOccurs="10", the spec's AllowedIps "maximum": 10
# The spec's own example of a range is written with an en dash (U+2013); its pattern takes "-".
_DASHES = str.maketrans({"\u2013": "-"})
AddressLike = str | IPv4Address
RangeLike = str | tuple[AddressLike, AddressLike]
MaskLike = str | IPv4Network | IPv4Interface


@dataclass(frozen=True, init=False)
class AllowedIps:
    """The IPv4 addresses the tokens of a login may be used from: KSeF's ``AuthorizationPolicy``
    (``allowedIps`` of ``POST /auth/ksef-token``, ``AuthorizationPolicy/AllowedIps`` of the XAdES
    ``AuthTokenRequest``). KSeF then refuses a request with the access token from any other address
    (403, ``reasonCode`` ``ip-not-allowed``). Pass it as ``allowed_ips=`` to a login.

    ``addresses``: single addresses (``"192.168.0.10"``); ``ranges``: ``"10.0.0.1-10.0.0.254"`` or
    ``(start, end)``, both ends included; ``masks``: CIDR networks (``"172.16.0.0/16"``; an address
    with host bits is taken to its network: ``"10.1.2.3/8"`` is sent as ``10.0.0.0/8``). Strings or
    ``ipaddress`` objects; a single value may stand for a list of one. ``include_client_ip=True``
    adds the address KSeF sees the client connect from (the challenge's ``clientIp``, which
    api-changelog.md says "może zostać bezpośrednio wykorzystana do budowy AuthorizationPolicy"):
    ``AllowedIps.client_ip()`` is a policy of that address alone.

    Checked when made, before any request, as KSeF's schemas check them (IPv4 only, at most 10 of
    each kind, a range's start not after its end, a prefix of 0 to 32): ``ValueError`` naming the
    value otherwise. Duplicate addresses are sent once.
    """

    addresses: tuple[IPv4Address, ...]
    ranges: tuple[tuple[IPv4Address, IPv4Address], ...]
    masks: tuple[IPv4Network, ...]
    include_client_ip: bool

    def __init__(
        self,
        addresses: AddressLike | Iterable[AddressLike] = (),
        ranges: RangeLike | Iterable[RangeLike] = (),
        masks: MaskLike | Iterable[MaskLike] = (),
        *,
        include_client_ip: bool = False,
    ) -> None:
        found = tuple(dict.fromkeys(_ipv4(a, "allowed_ips addresses") for a in _items(addresses, (str, IPv4Address))))
        spans = tuple(_range(r) for r in _range_items(ranges))
        networks = tuple(_mask(m) for m in _items(masks, (str, IPv4Network, IPv4Interface)))
        own = " (with the client's own, include_client_ip=True)" if include_client_ip else ""
        _at_most_ten("addresses", len(found) + include_client_ip, own)
        _at_most_ten("ranges", len(spans))
        _at_most_ten("masks", len(networks))
        if not (found or spans or networks or include_client_ip):
            raise ValueError(
                "allowed_ips: no address, range or mask (and include_client_ip=False): give at least one,"
                " or allowed_ips=None for a login whose tokens work from anywhere"
            )
        object.__setattr__(self, "addresses", found)
        object.__setattr__(self, "ranges", spans)
        object.__setattr__(self, "masks", networks)
        object.__setattr__(self, "include_client_ip", bool(include_client_ip))

    @classmethod
    def client_ip(cls) -> AllowedIps:
        """The address KSeF sees the client connect from, alone (the challenge's ``clientIp``)."""
        return cls(include_client_ip=True)

    def resolved(self, client_ip: str) -> AllowedIps:
        """This policy with ``client_ip`` (the challenge's ``clientIp``) among the addresses when it
        asks for it (``include_client_ip``); ``ValueError`` when that is no IPv4 address (a client
        that reaches KSeF over IPv6 cannot be named in the policy)."""
        if not self.include_client_ip:
            return self
        try:
            seen = ipaddress.ip_address(client_ip.strip())
        except ValueError:
            raise ValueError(f"allowed_ips: KSeF's clientIp {client_ip!r} is no IP address") from None
        mapped = seen.ipv4_mapped if isinstance(seen, ipaddress.IPv6Address) else seen
        if mapped is None:
            raise ValueError(
                f"allowed_ips: KSeF sees this client from {client_ip}, an IPv6 address, and the policy takes"
                " IPv4 addresses only (include_client_ip=True cannot be met: connect over IPv4, or list the addresses)"
            )
        return AllowedIps((*self.addresses, mapped), self.ranges, self.masks)

    @property
    def ip4_addresses(self) -> list[str]:
        """The addresses as KSeF takes them (``Ip4Address``, ``ip4Addresses``); ``ValueError`` while
        the client's own is still to be added (:meth:`resolved`)."""
        self._check_resolved()
        return [str(a) for a in self.addresses]

    @property
    def ip4_ranges(self) -> list[str]:
        """The ranges as KSeF takes them, ``start-end`` (``Ip4Range``, ``ip4Ranges``)."""
        return [f"{start}-{end}" for start, end in self.ranges]

    @property
    def ip4_masks(self) -> list[str]:
        """The networks as KSeF takes them, ``address/prefix`` (``Ip4Mask``, ``ip4Masks``)."""
        return [str(m) for m in self.masks]

    def _check_resolved(self) -> None:
        if self.include_client_ip:
            raise ValueError(
                "allowed_ips: include_client_ip=True needs the challenge's clientIp: the login adds it,"
                " or call .resolved(client_ip) first"
            )


def _items(value: object, single: tuple[type, ...]) -> Iterator[object]:
    """``value``'s items, a single value (of the types in ``single``) being a list of one."""
    if isinstance(value, single):
        yield value
        return
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise ValueError(f"allowed_ips: expected a list of values, got {type(value).__name__} {value!r}")
    yield from value


def _range_items(value: object) -> Iterator[object]:
    """The ranges of ``ranges=``: a ``start-end`` text or a ``(start, end)`` pair of addresses is
    one range, as the docstring offers; anything else a list of them."""
    if isinstance(value, tuple | list) and len(value) == 2 and all(map(_one_address, value)):
        yield value
        return
    yield from _items(value, (str,))


def _one_address(value: object) -> bool:
    """Whether ``value`` stands for one address (not a range of them)."""
    return isinstance(value, IPv4Address) or (isinstance(value, str) and "-" not in value.translate(_DASHES))


def _ipv4(value: object, where: str) -> IPv4Address:
    """An IPv4 address (a string in dotted decimal, no leading zeros: the spec's pattern), else
    ``ValueError``."""
    found: object = value
    if isinstance(value, str):
        try:
            found = ipaddress.ip_address(value.strip())
        except ValueError:
            found = None
    if isinstance(found, IPv4Address):
        return found
    if isinstance(found, ipaddress.IPv6Address):
        raise ValueError(f"{where}: {value!r} is an IPv6 address; KSeF's AllowedIps takes IPv4 addresses only")
    raise ValueError(f"{where}: {value!r} is not an IPv4 address (dotted decimal, e.g. 192.168.0.10)")


def _range(value: object) -> tuple[IPv4Address, IPv4Address]:
    where = "allowed_ips ranges"
    if isinstance(value, str):
        parts = value.translate(_DASHES).split("-")
    elif isinstance(value, tuple | list):
        parts = list(value)
    else:
        parts = []
    if len(parts) != 2:
        raise ValueError(f"{where}: {value!r} is not a range start-end (e.g. 10.0.0.1-10.0.0.254) or (start, end)")
    start, end = _ipv4(parts[0], f"{where}: {value!r}"), _ipv4(parts[1], f"{where}: {value!r}")
    if start > end:
        raise ValueError(f"{where}: {value!r} starts ({start}) after it ends ({end})")
    return start, end


def _mask(value: object) -> IPv4Network:
    where = "allowed_ips masks"
    if isinstance(value, IPv4Network):
        return value
    if isinstance(value, IPv4Interface):
        return value.network
    if not isinstance(value, str):
        kind = "IPv6" if isinstance(value, ipaddress.IPv6Network | ipaddress.IPv6Interface) else type(value).__name__
        raise ValueError(f"{where}: {value!r} ({kind}) is not an IPv4 network in CIDR notation (e.g. 172.16.0.0/16)")
    address, slash, prefix = value.strip().partition("/")
    if not slash:
        raise ValueError(f"{where}: {value!r} is not in CIDR notation address/prefix (e.g. 172.16.0.0/16)")
    base = _ipv4(address, f"{where}: {value!r}")
    if not (prefix.isascii() and prefix.isdigit()) or int(prefix) > 32:
        raise ValueError(f"{where}: {value!r}: the prefix must be a number from 0 to 32")
    return IPv4Network(f"{base}/{int(prefix)}", strict=False)


def _at_most_ten(kind: str, count: int, note: str = "") -> None:
    if count > MAX_ALLOWED_IPS:
        raise ValueError(f"allowed_ips: at most {MAX_ALLOWED_IPS} {kind} (KSeF's limit), got {count}{note}")


def _append_policy(root: etree._Element, ns: str, allowed_ips: AllowedIps) -> None:
    """``AuthorizationPolicy/AllowedIps`` in the schema's order: every ``Ip4Address``, then every
    ``Ip4Range``, then every ``Ip4Mask`` (an ``xsd:sequence``)."""
    allowed = etree.SubElement(etree.SubElement(root, ns + "AuthorizationPolicy"), ns + "AllowedIps")
    for name, values in (
        ("Ip4Address", allowed_ips.ip4_addresses),
        ("Ip4Range", allowed_ips.ip4_ranges),
        ("Ip4Mask", allowed_ips.ip4_masks),
    ):
        for value in values:
            etree.SubElement(allowed, ns + name).text = value


def read_allowed_ips(request: etree._Element) -> AllowedIps | None:
    """The ``AuthorizationPolicy`` of an ``AuthTokenRequest`` element (``None`` without one),
    checked as :class:`AllowedIps` checks it and for the schema's elements and their order;
    ``ValueError`` otherwise."""
    ns = etree.QName(request).namespace
    policies = request.findall(f"{{{ns}}}AuthorizationPolicy")
    if not policies:
        return None
    children = [etree.QName(c).localname for c in policies[0] if isinstance(c.tag, str)]
    if len(policies) > 1 or children != ["AllowedIps"]:
        raise ValueError("AuthorizationPolicy: expected one AuthorizationPolicy holding one AllowedIps")
    allowed = next(c for c in policies[0] if isinstance(c.tag, str))  # comments may come first
    entries = [(etree.QName(e).localname, (e.text or "").strip()) for e in allowed if isinstance(e.tag, str)]
    order = ["Ip4Address", "Ip4Range", "Ip4Mask"]
    names = [name for name, _ in entries]
    if any(name not in order for name in names) or names != sorted(names, key=order.index):
        raise ValueError(f"AllowedIps: expected Ip4Address, then Ip4Range, then Ip4Mask elements, found {names}")
    return AllowedIps(*([text for name, text in entries if name == kind] for kind in order))


def build_auth_token_request(
    challenge: str,
    context_type: str,
    context_value: str,
    subject_identifier_type: str = "certificateSubject",
    allowed_ips: AllowedIps | None = None,
) -> etree._Element:
    """The unsigned ``AuthTokenRequest`` document; with ``allowed_ips`` (resolved: no
    ``include_client_ip`` left) it carries their ``AuthorizationPolicy`` and is of schema 2.1."""
    if context_type not in CONTEXT_TYPES:
        raise ValueError(f"context_type: {context_type!r} is not one of {', '.join(CONTEXT_TYPES)}")
    if subject_identifier_type not in SUBJECT_IDENTIFIER_TYPES:
        raise ValueError(
            f"subject_identifier_type: {subject_identifier_type!r} is not one of {SUBJECT_IDENTIFIER_TYPES}"
        )
    if allowed_ips is not None:
        allowed_ips._check_resolved()
    namespace = AUTH_NAMESPACE if allowed_ips is None else AUTH_NAMESPACE_2_1
    ns = "{%s}" % namespace  # noqa: UP031 - lxml's Clark notation
    root = etree.Element(ns + "AuthTokenRequest", nsmap={None: namespace})  # type: ignore[dict-item]
    etree.SubElement(root, ns + "Challenge").text = challenge
    context = etree.SubElement(root, ns + "ContextIdentifier")
    etree.SubElement(context, ns + context_type).text = context_value
    etree.SubElement(root, ns + "SubjectIdentifierType").text = subject_identifier_type
    if allowed_ips is not None:  # the schema's last element
        _append_policy(root, ns, allowed_ips)
    return root


def sign_xades(document: etree._Element, credentials: SigningCredentials) -> bytes:
    """Enveloped XAdES-BES signature (SHA-256) with the signer's certificate embedded."""
    method = (
        SignatureMethod.RSA_SHA256
        if isinstance(credentials.private_key, rsa.RSAPrivateKey)
        else SignatureMethod.ECDSA_SHA256
    )
    signer = XAdESSigner(signature_algorithm=method, digest_algorithm=DigestAlgorithm.SHA256, c14n_algorithm=C14N_1_0)
    signed = signer.sign(document, key=credentials.private_key, cert=[credentials.certificate])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def signed_auth_token_request(
    challenge: str,
    context_type: str,
    context_value: str,
    credentials: SigningCredentials,
    subject_identifier_type: str = "certificateSubject",
    allowed_ips: AllowedIps | None = None,
) -> bytes:
    """The signed document for ``POST /auth/xades-signature`` (``allowed_ips``: see
    :func:`build_auth_token_request`)."""
    document = build_auth_token_request(challenge, context_type, context_value, subject_identifier_type, allowed_ips)
    return sign_xades(document, credentials)


class SignatureVerificationError(ValueError):
    """The XAdES signature is missing, malformed or does not verify."""


@dataclass(frozen=True)
class VerifiedDocument:
    """A verified signed document: its signed content and the signer's certificate."""

    root: etree._Element
    certificate: x509.Certificate


def embedded_certificate(xml: bytes) -> x509.Certificate:
    """The signer's certificate from ``ds:KeyInfo``."""
    root = parse(xml)
    found = root.find(f".//{{{DSIG_NAMESPACE}}}X509Certificate")
    if found is None or not found.text:
        raise SignatureVerificationError("no X509Certificate in the signature's KeyInfo")
    return x509.load_der_x509_certificate(base64.b64decode("".join(found.text.split())))


def verify_xades(xml: bytes, certificate: x509.Certificate | None = None) -> VerifiedDocument:
    """Verify an enveloped XAdES signature against ``certificate`` (default: the embedded one).

    Trusting the embedded certificate accepts self-signed certificates, as KSeF's TEST does;
    the caller decides whether that certificate identifies someone allowed to act.
    """
    if declares_entities(xml):
        raise SignatureVerificationError("documents with a DTD are refused")
    try:
        cert = certificate or embedded_certificate(xml)
        results = _verifier().verify(xml, x509_cert=cert, expect_config=_ACCEPTED)
    except (InvalidInput, InvalidSignature, etree.XMLSyntaxError, ValueError) as error:
        if isinstance(error, SignatureVerificationError):
            raise
        raise SignatureVerificationError(f"{type(error).__name__}: {error}") from error
    document = _unsigned_canonical(parse(xml))
    for result in results:
        if result.signed_xml is not None and _canonical(result.signed_xml) == document:
            return VerifiedDocument(result.signed_xml, cert)
    raise SignatureVerificationError("the signature does not cover the whole document (enveloped reference missing)")


def _verifier() -> XAdESVerifier:
    """A verifier that also reads signatures in the default namespace (``<Signature xmlns=...>``,
    as .NET's ``SignedXml`` writes them: the official C# client, the Ministry's test app): lxml's
    canonical form of SignedInfo then carries a stray ``xmlns=""`` on inner elements, and every
    such signature read as invalid (signxml issues 193 and 275); xmlsec1 verifies them."""
    verifier = XAdESVerifier()
    verifier.excise_empty_xmlns_declarations = True
    return verifier


def _unsigned_canonical(root: etree._Element) -> bytes:
    """The document as an enveloped signature over it signs it: canonical, its own ``Signature``
    taken out. A verified reference must sign exactly this: a reference to some other element
    (by ``Id``, moved into the signature or elsewhere) would let a forged document around it pass
    as signed (signature wrapping)."""
    _take_out_signatures(root)
    return _canonical(root)


def unsigned_content(request: etree._Element) -> etree._Element:
    """A copy of a signed ``AuthTokenRequest`` as its enveloped signature signs it: without its
    ``ds:Signature`` children (taken out by the enveloped-signature transform, or by the guide's
    XPath ``not(ancestor-or-self::ds:Signature)``), the text after each kept. This is what the
    schema describes: it has no place for a signature (``schemas.auth_request_errors``)."""
    content = copy.deepcopy(request)
    _take_out_signatures(content)
    return content


def _take_out_signatures(root: etree._Element) -> None:
    """Remove the ``ds:Signature`` children of ``root`` as the enveloped-signature transform does."""
    for signature in root.findall(f"{{{_DSIG}}}Signature"):
        tail = signature.tail
        previous = signature.getprevious()
        root.remove(signature)  # lxml drops the tail with the element; the transform keeps it
        if tail:
            if previous is not None:
                previous.tail = (previous.tail or "") + tail
            else:
                root.text = (root.text or "") + tail


def _canonical(element: etree._Element) -> bytes:
    # Exclusive and without comments: what is signed, whichever canonical form the reference used.
    return bytes(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))
