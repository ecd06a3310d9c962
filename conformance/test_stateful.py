"""Stateful runs: schemathesis follows links between operations (open -> send/status/close;
create token -> status/revoke; export -> status; enrollment -> status; grant -> operation status).

The spec has no ``links``; they are added here to the copy of the spec the suite uses (the
generated client does not need them). ``use_after_free`` is off: KSeF revokes, it does not
delete.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance, use_after_free

from conformance.conftest import EXAMPLES, pinned_spec
from conformance.test_emulator_vs_spec import emulator_schema, schema_valid_requests_pass_the_validator

# (source path, method, status) -> {link name: (target operationRef path, method, parameter)}
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, str]]] = {
    ("/sessions/online", "post", "201"): {
        "SessionStatus": ("/sessions/{referenceNumber}", "get", "referenceNumber"),
        "SendInvoice": ("/sessions/online/{referenceNumber}/invoices", "post", "referenceNumber"),
        "CloseSession": ("/sessions/online/{referenceNumber}/close", "post", "referenceNumber"),
        "SessionInvoices": ("/sessions/{referenceNumber}/invoices", "get", "referenceNumber"),
    },
    ("/tokens", "post", "202"): {
        "TokenStatus": ("/tokens/{referenceNumber}", "get", "referenceNumber"),
        "RevokeToken": ("/tokens/{referenceNumber}", "delete", "referenceNumber"),
    },
    ("/invoices/exports", "post", "201"): {
        "ExportStatus": ("/invoices/exports/{referenceNumber}", "get", "referenceNumber"),
    },
    ("/permissions/persons/grants", "post", "202"): {
        "OperationStatus": ("/permissions/operations/{referenceNumber}", "get", "referenceNumber"),
    },
}


def with_links(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with the links above."""
    linked = copy.deepcopy(spec)
    for (path, method, status), links in LINKS.items():
        response = linked["paths"][path][method]["responses"][status]
        response["links"] = {
            name: {
                "operationRef": f"#/paths/{target.replace('/', '~1')}/{target_method}",
                "parameters": {parameter: "$response.body#/referenceNumber"},
            }
            for name, (target, target_method, parameter) in links.items()
        }
    return linked


def test_links_point_at_operations_of_the_spec() -> None:
    spec = pinned_spec()
    for links in LINKS.values():
        for target, method, _ in links.values():
            assert method in spec["paths"][target]


def _state_machine() -> Any:
    machine = emulator_schema(with_links(pinned_spec())).as_state_machine()

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                additional_checks=[schema_valid_requests_pass_the_validator],
                excluded_checks=[positive_data_acceptance, use_after_free],
            )

    return Workflow


def test_stateful_workflows() -> None:
    workflow = _state_machine()
    workflow.run(
        settings=settings(
            max_examples=EXAMPLES * 4,
            derandomize=True,
            deadline=None,
            stateful_step_count=6,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
    )
