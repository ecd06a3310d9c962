"""Endpoints: KSeF certificates (enrollment, retrieval, listing, revocation) and collective identifiers."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ksef_client._generated import models
from ksef_client.mock.auth import Access
from ksef_client.mock.certificates import KsefCertificate
from ksef_client.mock.exceptions import MockAPIError
from ksef_client.mock.models import KSeFBackend
from ksef_client.mock.permissions import page_of
from ksef_client.mock.responses import api_endpoint, int_param, iso, json_body, render_status
from ksef_client.mock.routes.permissions import parsed_body

_VALIDATION = "Błąd walidacji danych wejściowych."


@api_endpoint("certificates.get_certificate_limits")
async def get_certificate_limits(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    used = len(backend.certificates_of(access))
    return JSONResponse(
        {"canRequest": used < 100, "enrollment": {"limit": 300, "remaining": 300 - len(backend.enrollments)},
         "certificate": {"limit": 100, "remaining": max(0, 100 - used)}}
    )  # fmt: skip


@api_endpoint("certificates.get_enrollment_data")
async def get_enrollment_data(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    nip = access.context.nip or access.context.value
    return JSONResponse(
        {"commonName": f"Podmiot {nip}", "countryName": "PL", "organizationName": f"Podmiot {nip}",
         "organizationIdentifier": f"VATPL-{nip}"}
    )  # fmt: skip


@api_endpoint("certificates.create_enrollment")
async def create_enrollment(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.EnrollCertificateRequest)
    raw = body.to_dict()
    start = dt.datetime.fromisoformat(raw["validFrom"]) if raw.get("validFrom") else None
    enrollment = backend.enroll(access, body.certificate_name, str(body.certificate_type), body.csr, start)
    return JSONResponse(
        {"referenceNumber": enrollment.reference_number, "timestamp": iso(enrollment.requested)}, status_code=202
    )


@api_endpoint("certificates.get_enrollment_status")
async def get_enrollment_status(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    enrollment = backend.enrollment(access, request.path_params["referenceNumber"])
    body: dict[str, Any] = {"requestDate": iso(enrollment.requested), "status": render_status(enrollment.status)}
    if enrollment.serial:
        body["certificateSerialNumber"] = enrollment.serial
    return JSONResponse(body)


@api_endpoint("certificates.retrieve_certificates")
async def retrieve_certificates(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.RetrieveCertificatesRequest)
    found = [backend.certificate(access, serial) for serial in body.certificate_serial_numbers]
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
    backend.certificate(access, request.path_params["certificateSerialNumber"]).status = "Revoked"
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
    found = [
        c for c in backend.certificates_of(access)
        if all(filters.get(k) in (None, v) for k, v in
               (("certificateSerialNumber", c.serial), ("name", c.name), ("type", c.type), ("status", c.status)))
    ]  # fmt: skip
    raw_offset, raw_size = request.query_params.get("pageOffset", "0"), request.query_params.get("pageSize", "10")
    if not raw_offset.isdigit() or not raw_size.isdigit() or not 10 <= int(raw_size) <= 50:
        raise MockAPIError(21405, _VALIDATION, ["pageOffset >= 0, pageSize 10-50."])
    items, has_more = page_of(found, int(raw_offset), int(raw_size))
    return JSONResponse({"certificates": [_listed(c) for c in items], "hasMore": has_more})


@api_endpoint("testdata.update_test_certificate")
async def update_test_certificate(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.TestDataUpdateCertificateRequest)
    certificate = backend.certificate(access, request.path_params["serialNumber"])
    certificate.valid_to = dt.datetime.fromisoformat(body.to_dict()["validTo"])
    return Response(status_code=200)


async def _accepted_override(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    if request.method == "POST" and await request.body():
        await json_body(request)
    return Response(status_code=200)


set_test_certificate_limits = api_endpoint("testdata.set_test_certificate_limits")(_accepted_override)
reset_test_certificate_limits = api_endpoint("testdata.reset_test_certificate_limits")(_accepted_override)
set_test_rate_limits_production = api_endpoint("testdata.set_test_rate_limits_production")(_accepted_override)


# --- collective identifiers -----------------------------------------------------------------------


@api_endpoint("collective_identifiers.create_collective_identifier")
async def create_collective_identifier(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = await parsed_body(request, models.GenerateCollectiveIdentifierRequest)
    identifier = backend.create_collective_identifier(access, [i.to_dict() for i in body.invoices])
    return JSONResponse({"collectiveIdentifierNumber": identifier.number}, status_code=201)


@api_endpoint("collective_identifiers.query_collective_identifiers")
async def query_collective_identifiers(request: Request, backend: KSeFBackend, access: Access | None) -> Response:
    assert access is not None
    body = (await parsed_body(request, models.CollectiveIdentifiersQueryRequest)).to_dict()
    start, end = dt.datetime.fromisoformat(body["dateCreatedFrom"]), dt.datetime.fromisoformat(body["dateCreatedTo"])
    found = [
        i for i in backend.collective_identifiers.values()
        if start <= i.created <= end and body.get("collectiveIdentifierNumber") in (None, i.number)
    ]  # fmt: skip
    size = int_param(request, "pageSize", default=10, low=10, high=200)
    items = [
        {"collectiveIdentifierNumber": i.number, "dateCreated": iso(i.created), "invoiceCount": len(i.invoices),
         "createdInCurrentContext": i.context == access.context}
        for i in found
    ]  # fmt: skip
    page = backend.page(items, size, request.headers.get("x-continuation-token") or None)
    return JSONResponse({"continuationToken": page.continuation_token, "collectiveIdentifiers": page.items})


@api_endpoint("collective_identifiers.query_collective_identifier_invoices")
async def query_collective_identifier_invoices(
    request: Request, backend: KSeFBackend, access: Access | None
) -> Response:
    assert access is not None
    body = await parsed_body(request, models.CollectiveIdentifierInvoicesQueryRequest)
    size = int_param(request, "pageSize", default=10, low=10, high=500)
    items = backend.collective_identifier_invoices(access, list(body.collective_identifier_numbers))
    page = backend.page(items, size, request.headers.get("x-continuation-token") or None)
    return JSONResponse({"continuationToken": page.continuation_token, "invoices": page.items})


@api_endpoint("collective_identifiers.list_collective_identifiers_by_ksef_number")
async def list_collective_identifiers_by_ksef_number(
    request: Request, backend: KSeFBackend, access: Access | None
) -> Response:
    assert access is not None
    number = request.path_params["ksefNumber"]
    items = [
        {"collectiveIdentifierNumber": i.number, "createdInCurrentContext": i.context == access.context,
         "dateCreated": iso(i.created)}
        for i in backend.collective_identifiers.values()
        if any(inv.get("ksefNumber") == number for inv in i.invoices)
    ]  # fmt: skip
    size = int_param(request, "pageSize", default=10, low=10, high=200)
    page = backend.page(items, size, request.headers.get("x-continuation-token") or None)
    return JSONResponse({"continuationToken": page.continuation_token, "collectiveIdentifiers": page.items})


HANDLERS: dict[str, Any] = {
    "certificates.get_certificate_limits": get_certificate_limits,
    "certificates.get_enrollment_data": get_enrollment_data,
    "certificates.create_enrollment": create_enrollment,
    "certificates.get_enrollment_status": get_enrollment_status,
    "certificates.retrieve_certificates": retrieve_certificates,
    "certificates.revoke_certificate": revoke_certificate,
    "certificates.query_certificates": query_certificates,
    "testdata.update_test_certificate": update_test_certificate,
    "testdata.set_test_certificate_limits": set_test_certificate_limits,
    "testdata.reset_test_certificate_limits": reset_test_certificate_limits,
    "testdata.set_test_rate_limits_production": set_test_rate_limits_production,
    "collective_identifiers.create_collective_identifier": create_collective_identifier,
    "collective_identifiers.query_collective_identifiers": query_collective_identifiers,
    "collective_identifiers.query_collective_identifier_invoices": query_collective_identifier_invoices,
    "collective_identifiers.list_collective_identifiers_by_ksef_number": list_collective_identifiers_by_ksef_number,
}
