"""The emulator's reading of a signed ``AuthTokenRequest``: every signature form the Ministry's guide
accepts, each checked to sign the whole document.

auth/podpis-xades.md: "Dopuszczalne formaty podpisu: otaczany (enveloped), otaczający (enveloping)"
and, among the accepted transforms, "http://www.w3.org/TR/1999/REC-xpath-19991116 -
not(ancestor-or-self::ds:Signature)" and "http://www.w3.org/2002/06/xmldsig-filter2".
``ksef_client.xades.verify_xades`` (shared with UPO checks) reads enveloped signatures with the
enveloped-signature transform; the other forms are read here, with the same guard against signature
wrapping: what is signed must be the whole ``AuthTokenRequest``, and only the signed bytes are read.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.xades.xades import XAdESVerifier

from ksef_client._xml import declares_entities, parse
from ksef_client.xades import (
    _ACCEPTED,
    _DSIG,
    SignatureVerificationError,
    VerifiedDocument,
    _canonical,
    _unsigned_canonical,
    embedded_certificate,
    verify_xades,
)

XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
_NOT_IN_SIGNATURE = re.compile(r"not\(ancestor-or-self::(?:(?P<prefix>[\w.-]+):)?Signature\)")
_SIGNATURE = f"{{{_DSIG}}}Signature"


def verify_auth_document(xml: bytes) -> VerifiedDocument:
    """Verify a signed ``AuthTokenRequest`` in any form the guide accepts; the verified document is
    the signed ``AuthTokenRequest`` (read from the signed bytes) and the signer's certificate.

    ``SignatureVerificationError`` when it does not verify, or the signature does not cover the
    whole ``AuthTokenRequest`` (signature wrapping).
    """
    try:
        return verify_xades(xml)
    except SignatureVerificationError:
        if not _other_form(xml):
            raise
    return _verify_other_form(xml)


def _other_form(xml: bytes) -> bool:
    """Whether ``xml`` is signed in a form only this module reads: enveloping (the document is
    the ``ds:Signature``), or with an XPath / XPath Filter 2.0 transform."""
    try:
        root = parse(xml)
    except (etree.XMLSyntaxError, ValueError):
        return False
    algorithms = {t.get("Algorithm") for t in root.iter(f"{{{_DSIG}}}Transform")}
    return root.tag == _SIGNATURE or bool(algorithms & {XPATH, XPATH_FILTER2})


def _verify_other_form(xml: bytes) -> VerifiedDocument:
    if declares_entities(xml):
        raise SignatureVerificationError("documents with a DTD are refused")
    try:
        certificate = embedded_certificate(xml)
        results = _FormsVerifier().verify(xml, x509_cert=certificate, expect_config=_ACCEPTED)
        root = parse(xml)
    except (InvalidInput, InvalidSignature, etree.XMLSyntaxError, etree.XPathError, ValueError) as error:
        if isinstance(error, SignatureVerificationError):
            raise
        raise SignatureVerificationError(f"{type(error).__name__}: {error}") from error
    signed = [result.signed_xml for result in results if result.signed_xml is not None]
    if root.tag == _SIGNATURE:  # enveloping: the request is the whole content of a signed ds:Object
        for element in signed:
            if (content := _object_content(element)) is not None:
                return VerifiedDocument(content, certificate)
        raise SignatureVerificationError(
            "the enveloping signature signs no ds:Object whose whole content is the AuthTokenRequest"
        )
    document = _unsigned_canonical(root)
    for element in signed:
        if _canonical(element) == document:
            return VerifiedDocument(element, certificate)
    raise SignatureVerificationError("the signature does not cover the whole document (enveloped reference missing)")


def _object_content(element: etree._Element) -> etree._Element | None:
    """The one element a signed ``ds:Object`` holds, when it holds nothing else (no other element,
    no text): in an enveloping signature that element is the signed document."""
    if element.tag != f"{{{_DSIG}}}Object":
        return None
    children = list(element)
    if len(children) != 1 or not isinstance(children[0].tag, str):
        return None
    if (element.text or "").strip() or (children[0].tail or "").strip():
        return None
    return children[0]


class _FormsVerifier(XAdESVerifier):
    """signxml's verifier (as ``verify_xades`` configures it), plus the XPath transforms the guide
    lists. signxml skips transforms it does not know, so without this an XPath-filtered reference
    fails its digest with the signature still in it."""

    excise_empty_xmlns_declarations = True

    def _apply_transforms(self, payload: Any, *, transforms_node: Any, signature: Any) -> Any:
        if transforms_node is not None and isinstance(payload, etree._Element):
            for transform in transforms_node.iterfind(f"{{{_DSIG}}}Transform"):
                if transform.get("Algorithm") == XPATH:
                    _xpath_not_in_signature(payload, transform)
                elif transform.get("Algorithm") == XPATH_FILTER2:
                    _xpath_filter2(payload, transform)
        return super()._apply_transforms(payload, transforms_node=transforms_node, signature=signature)


def _xpath_not_in_signature(payload: etree._Element, transform: etree._Element) -> None:
    """XPath transform: only the guide's ``not(ancestor-or-self::ds:Signature)`` (every node outside
    a ``ds:Signature``: the enveloped-signature transform's effect); any other expression is refused."""
    expression = "".join((transform.findtext(f"{{{_DSIG}}}XPath") or "").split())
    match = _NOT_IN_SIGNATURE.fullmatch(expression)
    xpath = transform.find(f"{{{_DSIG}}}XPath")
    if match is None or xpath is None or xpath.nsmap.get(match["prefix"]) != _DSIG:
        raise InvalidInput(f"XPath transform: only not(ancestor-or-self::ds:Signature) is accepted, not {expression!r}")
    _remove(payload, list(payload.iter(_SIGNATURE)))


def _xpath_filter2(payload: etree._Element, transform: etree._Element) -> None:
    """XPath Filter 2.0: ``subtract`` removes the selected subtrees; ``intersect`` / ``union`` of the
    whole document (``/``) leave it as it is; other filters are refused (the emulator does not
    compute arbitrary node-sets)."""
    for xpath in transform.iterfind(f"{{{XPATH_FILTER2}}}XPath"):
        expression = (xpath.text or "").strip()
        kind = xpath.get("Filter")
        if kind in ("intersect", "union") and expression == "/":
            continue
        if kind != "subtract":
            raise InvalidInput(f"XPath Filter 2.0: {kind} {expression!r} is not supported by the emulator")
        namespaces = {prefix: uri for prefix, uri in xpath.nsmap.items() if prefix}
        selected = payload.getroottree().xpath(expression, namespaces=namespaces)
        if not isinstance(selected, list):
            raise InvalidInput(f"XPath Filter 2.0: {expression!r} selects no nodes")
        _remove(payload, [node for node in selected if isinstance(node, etree._Element)])


def _remove(payload: etree._Element, elements: list[etree._Element]) -> None:
    """Take ``elements`` (and what they hold) out of ``payload``, keeping the text after each."""
    for element in elements:
        if element is payload:
            raise InvalidInput("the transform removes the whole signed content")
        parent = element.getparent()
        if parent is None or not any(ancestor is payload for ancestor in element.iterancestors()):
            continue
        tail, previous = element.tail, element.getprevious()
        parent.remove(element)
        if tail:
            if previous is not None:
                previous.tail = (previous.tail or "") + tail
            else:
                parent.text = (parent.text or "") + tail
