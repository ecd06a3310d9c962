"""The emulator keeps a login's IP policy and refuses its tokens elsewhere, as KSeF does.

Raw HTTP through the in-process app (strict: every answer is held to the spec), the client's
address set per connection (``httpx.ASGITransport(client=...)``). What KSeF answers, from the spec:
``ForbiddenProblemDetails``, reasonCode "ip-not-allowed | Żądanie pochodzi z adresu IP innego niż
wskazany podczas uwierzytelnienia", ``security`` "ip-not-allowed | clientIp: string".
"""

from __future__ import annotations

from ksef_client.mock.validation import schema_errors


def test_the_specs_list_bounds_are_item_counts() -> None:
    # AllowedIps bounds its lists with "minimum": 0, "maximum": 10, which JSON Schema applies to
    # numbers only; api-changelog.md 2.4.0 says they limit the items and were always enforced.
    schema = {"$ref": "#/components/schemas/AllowedIps"}
    assert schema_errors(schema, {"ip4Addresses": [f"10.0.0.{i}" for i in range(10)], "ip4Masks": []}) == []
    assert schema_errors(schema, {"ip4Addresses": [f"10.0.0.{i}" for i in range(11)]})
    assert schema_errors(schema, {"ip4Masks": [f"10.{i}.0.0/16" for i in range(11)]})
