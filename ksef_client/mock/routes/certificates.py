"""Endpoints: KSeF certificates (``certificates``): enrollment, retrieval, listing, revocation."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client._generated import models
from ksef_client.mock.models import Access, KSeFBackend
from ksef_client.mock.responses import api_endpoint, iso, json_body, offset_params, parsed_body, render_status
from ksef_client.mock.state.certificates import KsefCertificate
from ksef_client.mock.state.permissions import page_of


def _moment(text: str | None) -> dt.datetime | None:
    """A date-time of a request body (already checked against the spec), UTC when it names no offset."""
    if not text:
        return None
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@api_endpoint("certificates.get_certificate_limits")
async def get_certificate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return JSONResponse(backend.certificates.limits(access))


@api_endpoint("certificates.get_enrollment_data")
async def get_enrollment_data(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    return JSONResponse(backend.certificates.enrollment_data(backend.auth.login_certificate_name(access)))


@api_endpoint("certificates.create_enrollment")
async def create_enrollment(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.EnrollCertificateRequest)
    raw = body.to_dict()
    start = _moment(raw.get("validFrom"))
    login = backend.auth.login_certificate_name(access)
    enrollment = backend.certificates.enroll(
        access, login, body.certificate_name, str(body.certificate_type), body.csr, start
    )
    return JSONResponse(
        {"referenceNumber": enrollment.reference_number, "timestamp": iso(enrollment.requested)}, status_code=202
    )


@api_endpoint("certificates.get_enrollment_status")
async def get_enrollment_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    enrollment = backend.certificates.enrollment(access, request.path_params["referenceNumber"])
    body: dict[str, Any] = {"requestDate": iso(enrollment.requested), "status": render_status(enrollment.status)}
    if enrollment.serial:
        body["certificateSerialNumber"] = enrollment.serial
    return JSONResponse(body)


@api_endpoint("certificates.retrieve_certificates")
async def retrieve_certificates(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.RetrieveCertificatesRequest)
    found = [backend.certificates.certificate(access, serial) for serial in body.certificate_serial_numbers]
    items = [
        {"certificate": base64.b64encode(c.der).decode(), "certificateName": c.name,
         "certificateSerialNumber": c.serial, "certificateType": c.type}
        for c in found
    ]  # fmt: skip
    return JSONResponse({"certificates": items})


@api_endpoint("certificates.revoke_certificate")
async def revoke_certificate(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    await json_body(request) if await request.body() else None
    login = backend.auth.login_certificate_name(access)
    backend.certificates.revoke(access, login, request.path_params["certificateSerialNumber"])
    return Response(status_code=204)


def _listed(certificate: KsefCertificate) -> dict[str, Any]:
    return {
        "certificateSerialNumber": certificate.serial, "name": certificate.name, "type": certificate.type,
        "commonName": certificate.common_name, "status": certificate.status,
        "subjectIdentifier": {"type": certificate.subject[0], "value": certificate.subject[1]},
        "validFrom": iso(certificate.valid_from), "validTo": iso(certificate.valid_to),
        "requestDate": iso(certificate.requested),
    }  # fmt: skip


@api_endpoint("certificates.query_certificates")
async def query_certificates(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    filters = (await parsed_body(request, models.QueryCertificatesRequest)).to_dict() if await request.body() else {}
    expires_after = _moment(filters.get("expiresAfter"))
    found = backend.certificates.certificates_of(
        access, serial=filters.get("certificateSerialNumber"), name=filters.get("name"), kind=filters.get("type"),
        status=filters.get("status"), expires_after=expires_after,
    )  # fmt: skip
    offset, size = offset_params(request, high=50)
    items, has_more = page_of(found, offset, size)
    return JSONResponse({"certificates": [_listed(c) for c in items], "hasMore": has_more})
