"""The suite must fail when the emulator breaks the contract: a response field of the wrong type."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conformance.conftest import pinned_spec
from ksef_client.mock import KSeFBackend, create_app

NIP = "5265877635"


class FlipField:
    """Wraps the emulator and turns one JSON field of every answer into a number."""

    def __init__(self, app: Any, field: str) -> None:
        self.app, self.field = app, field

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan messages pass untouched
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}

        async def patched_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                try:
                    data = json.loads(body)
                except ValueError:
                    data = None
                if isinstance(data, dict) and self.field in data:
                    data[self.field] = 12345  # a number where the spec says string
                    body = json.dumps(data).encode()
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({**message, "body": body})

        await self.app(scope, receive, patched_send)


def test_a_response_field_of_the_wrong_type_is_reported() -> None:
    backend = KSeFBackend()
    schema = schemathesis.openapi.from_dict(pinned_spec())
    schema.app = FlipField(create_app(backend), "challenge")
    token = backend.mint_access_token(NIP)
    operation = schema["/auth/challenge"]["POST"]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=10,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    with pytest.raises(FailureGroup) as caught:
        run()
    assert any(type(failure).__name__ == "JsonSchemaError" for failure in caught.value.exceptions)
