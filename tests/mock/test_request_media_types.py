"""Request bodies come in the media type their operation declares, or KSeF answers 415.

The spec declares one request media type per operation: ``application/json`` for 42 of them,
``application/xml`` for ``POST /auth/xades-signature``. KSeF is an ASP.NET Core API, whose body
binding refuses any other with 415 Unsupported Media Type before the operation runs. The emulator
once parsed every body as JSON whatever its Content-Type (text/plain, a form, XML, none: all 200).
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from ksef_client.mock.validation import _spec, rules

METADATA = "/invoices/query/metadata"


def _query() -> bytes:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    return json.dumps({"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}}).encode()


@pytest.mark.parametrize("media_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
def test_a_json_operation_refuses_another_media_type_with_415(raw: httpx.Client, media_type: str | None) -> None:
    headers = {"Content-Type": media_type} if media_type else {}
    answer = raw.post(METADATA, content=_query(), headers=headers)  # httpx adds no Content-Type to raw bytes
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["title"] == "Unsupported Media Type" and problem["status"] == 415
    assert "application/json" in problem["detail"]


@pytest.mark.parametrize("media_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_the_declared_media_type_is_taken_with_any_parameters(raw: httpx.Client, media_type: str) -> None:
    answer = raw.post(METADATA, content=_query(), headers={"Content-Type": media_type})
    assert answer.status_code == 200, answer.text


def test_the_xades_operation_takes_xml_only(raw: httpx.Client) -> None:
    answer = raw.post(
        "/auth/xades-signature", content=b"<AuthTokenRequest/>", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 415
    assert "application/xml" in answer.json()["detail"]


def test_authentication_is_checked_before_the_media_type(raw: httpx.Client) -> None:
    # ASP.NET Core authenticates (middleware) before it binds the body (the action's filters).
    answer = raw.post(METADATA, content=_query(), headers={"Content-Type": "text/plain", "Authorization": ""})
    assert answer.status_code == 401


def test_every_operation_with_a_body_declares_its_media_types() -> None:
    for path, operations in _spec()["paths"].items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "requestBody" in operation:
                declared = tuple(operation["requestBody"]["content"])
                assert rules(method.upper(), path).media_types == declared, (method, path)
