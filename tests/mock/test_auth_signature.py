"""Signature forms of a XAdES login the Ministry's guide accepts (review of certificate login,
finding 5): auth/podpis-xades.md, "Dopuszczalne formaty podpisu: otaczany (enveloped), otaczający
(enveloping)"; accepted transforms include "http://www.w3.org/TR/1999/REC-xpath-19991116 -
not(ancestor-or-self::ds:Signature)" and "http://www.w3.org/2002/06/xmldsig-filter2". Each form
must still sign the whole AuthTokenRequest (no signature wrapping)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from lxml import etree
from signxml import methods
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.xades.xades import XAdESSigner

from ksef_client.mock.pytest_plugin import KSeFMock
from ksef_client.testing import self_signed_certificate
from ksef_client.xades import C14N_1_0, DSIG_NAMESPACE, SigningCredentials, build_auth_token_request
from tests.conftest import NIP

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"


class _TransformSigner(XAdESSigner):
    """signxml's enveloped signer, writing ``transform`` in place of the enveloped-signature
    transform: the digest is the same, as both leave the signature out of the document."""

    def __init__(self, transform: str, expression: str, **options: Any) -> None:
        super().__init__(**options)
        self.transform, self.expression = transform, expression

    def _build_transforms_for_reference(self, *, transforms_node: Any, **options: Any) -> None:
        super()._build_transforms_for_reference(transforms_node=transforms_node, **options)
        for node in transforms_node.iterfind(f"{{{DSIG_NAMESPACE}}}Transform"):
            if node.get("Algorithm") != ENVELOPED:
                continue
            node.set("Algorithm", self.transform)
            if self.transform == XPATH:
                etree.SubElement(node, f"{{{DSIG_NAMESPACE}}}XPath").text = self.expression
            else:
                filter2 = etree.SubElement(
                    node, f"{{{FILTER2}}}XPath", Filter="subtract", nsmap={"dsig-xpath": FILTER2}
                )
                filter2.text = self.expression


def _sign(challenge: str, credentials: SigningCredentials, signer: XAdESSigner) -> bytes:
    document = build_auth_token_request(challenge, "Nip", NIP)
    signed = signer.sign(document, key=credentials.private_key, cert=[credentials.certificate])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def _options(method: methods = methods.enveloped) -> dict[str, Any]:
    return {"method": method, "signature_algorithm": SignatureMethod.RSA_SHA256,
            "digest_algorithm": DigestAlgorithm.SHA256, "c14n_algorithm": C14N_1_0}  # fmt: skip


def _login(ksef_mock: KSeFMock, make: Any) -> tuple[int, Any]:
    """POST ``make(challenge)`` to ``/auth/xades-signature``: (HTTP status, final auth status code or
    the error body)."""
    with httpx.Client(base_url=ksef_mock.base_url) as client:
        challenge = client.post("/auth/challenge").json()["challenge"]
        answer = client.post(
            "/auth/xades-signature", content=make(challenge), headers={"Content-Type": "application/xml"}
        )
        if answer.status_code != 202:
            return answer.status_code, answer.json()
        started = answer.json()
        bearer = {"Authorization": f"Bearer {started['authenticationToken']['token']}"}
        status = client.get(f"/auth/{started['referenceNumber']}", headers=bearer).json()
        return 202, status["status"]["code"]


def _codes(body: Any) -> list[int]:
    return [int(d["exceptionCode"]) for d in body["exception"]["exceptionDetailList"]]


SEAL = self_signed_certificate(NIP, kind="seal")


def test_an_enveloping_signature_logs_in(ksef_mock: KSeFMock) -> None:
    # "otaczający (enveloping)": the AuthTokenRequest inside the signature's ds:Object.
    signer = XAdESSigner(**_options(methods.enveloping))
    assert _login(ksef_mock, lambda challenge: _sign(challenge, SEAL, signer)) == (202, 200)


@pytest.mark.parametrize(
    ("transform", "expression"),
    [(XPATH, "not(ancestor-or-self::ds:Signature)"), (FILTER2, "/descendant::ds:Signature")],
)
def test_xpath_transforms_the_guide_lists_log_in(ksef_mock: KSeFMock, transform: str, expression: str) -> None:
    signer = _TransformSigner(transform, expression, **_options())
    document = _sign("20261125-CR-0123456789-ABCDEF0123-4A", SEAL, signer)
    assert f'Algorithm="{transform}"'.encode() in document and ENVELOPED.encode() not in document
    assert _login(ksef_mock, lambda challenge: _sign(challenge, SEAL, signer)) == (202, 200)
    # The transform still covers the document: a changed context no longer verifies.
    tampered = _login(ksef_mock, lambda challenge: _sign(challenge, SEAL, signer).replace(
        f"<Nip>{NIP}</Nip>".encode(), b"<Nip>1111111111</Nip>", 1))  # fmt: skip
    assert tampered[0] == 400 and _codes(tampered[1]) == [9105]


def test_another_xpath_expression_is_refused(ksef_mock: KSeFMock) -> None:
    # The guide accepts the XPath transform with "not(ancestor-or-self::ds:Signature)" only.
    signer = _TransformSigner(XPATH, "not(ancestor-or-self::ds:Signature) or self::node()", **_options())
    status, body = _login(ksef_mock, lambda challenge: _sign(challenge, SEAL, signer))
    assert status == 400 and _codes(body) == [9105]


def test_an_enveloping_signature_wrapped_in_a_forged_request_is_refused(ksef_mock: KSeFMock) -> None:
    # Signature wrapping: a genuine enveloping signature (over a request for another context) put
    # inside a forged AuthTokenRequest for NIP: the forged document is not what was signed.
    signer = XAdESSigner(**_options(methods.enveloping))
    other = self_signed_certificate("1111111111", kind="seal")

    def forged(challenge: str) -> bytes:
        genuine = signer.sign(build_auth_token_request(challenge, "Nip", "1111111111"),
                              key=other.private_key, cert=[other.certificate])  # fmt: skip
        outer = build_auth_token_request(challenge, "Nip", NIP)
        outer.append(genuine)
        return bytes(etree.tostring(outer, xml_declaration=True, encoding="UTF-8"))

    status, body = _login(ksef_mock, forged)
    assert status == 400 and _codes(body) == [9105]
