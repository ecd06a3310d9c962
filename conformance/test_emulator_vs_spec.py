"""Property 1: every operation of the pinned spec, against the emulator in-process.

schemathesis draws positive and negative requests for each operation, sends them to the emulator
through its ASGI app with a minted access token, and checks every answer: documented status
codes and content types, response schemas and headers, negative data rejected, auth enforced.

KSeF reports a missing resource as 400 with a code, so schemathesis's generic "valid data is
accepted" check does not fit; it is replaced by a sharper one: a schema-valid request must never
be rejected by the emulator's spec validator (any such 400 means the emulator is stricter than
the spec).
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conformance.conftest import EXAMPLES, count_case, pinned_spec
from conformance.seed import seed
from ksef_client.mock import KSeFBackend, create_app
from ksef_client.mock.responses import SCHEMA_VIOLATION_HEADER

NIP = "5265877635"
BACKEND = KSeFBackend()
seed(BACKEND, NIP)  # listings, metadata and exports are fuzzed with real items in them


class MintedAccessToken:
    """An access token with every permission for one context (the emulator's test shortcut)."""

    def get(self, case: Any, context: Any) -> str:
        return BACKEND.mint_access_token(NIP)

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def emulator_schema(spec: dict[str, Any]) -> Any:
    """``spec`` as a schemathesis schema sent to the in-process emulator with a minted token."""
    loaded = schemathesis.openapi.from_dict(spec)
    loaded.app = create_app(BACKEND, strict=True)
    loaded.auth()(MintedAccessToken)
    return loaded


schema = emulator_schema(pinned_spec())


def _body_declared_but_missing(case: Any) -> bool:
    # The spec never marks request bodies required; KSeF (and the emulator) still need them.
    has_body = any(True for _ in case.operation.body)
    return has_body and (case.body is None or type(case.body).__name__ == "NotSet")


# The spec's own examples elide encrypted values as "..." (encryptedToken, encryptedInvoiceContent),
# which is no Base64: they break their ``format: byte``, which schemathesis, like JSON Schema Draft
# 4, does not check; its example and coverage phases send them. KSeF's byte[] binding refuses them.
_ELIDED = 'is not a "byte"'


def _an_elided_example(response: Any) -> bool:
    """Whether the emulator refused only the spec's "..." placeholders, as not Base64."""
    try:
        details = response.json()["exception"]["exceptionDetailList"][0]["details"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    return bool(details) and all(str(detail).endswith(f'"..." {_ELIDED}') for detail in details)


@schemathesis.check
def schema_valid_requests_pass_the_validator(ctx: Any, response: Any, case: Any) -> bool | None:
    """A positive case must not be refused by the emulator's schema validator."""
    mode = getattr(getattr(case.meta, "generation", None), "mode", None) if case.meta else None
    if mode is not GenerationMode.POSITIVE or _body_declared_but_missing(case):
        return None
    marker = response.headers.get(SCHEMA_VIOLATION_HEADER)
    if marker and not _an_elided_example(response):
        raise AssertionError(f"schema-valid request refused by the emulator's validator: {response.text[:300]}")
    return True


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_emulator_conforms_to_the_spec(case: Any) -> None:
    BACKEND.faults.clear()
    count_case(case.operation.label)
    case.call_and_validate(
        additional_checks=[schema_valid_requests_pass_the_validator], excluded_checks=[positive_data_acceptance]
    )
