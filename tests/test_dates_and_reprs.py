"""``invoices.query(date_from=date)`` (a day in Poland), naive datetimes refused by name, and short
reprs: a ``SessionUpo`` shows its pages, generated models no ``Unset`` objects (issue 20, point 9)."""

from __future__ import annotations

import datetime as dt
import inspect
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ksef_client import KSeF, SessionUpo, parse_upo
from ksef_client._generated import models
from ksef_client._generated.models import SessionInvoiceStatusResponse
from ksef_client._generated.types import UNSET, short_repr
from ksef_client.invoice_query import build_filters
from ksef_client.mock import KSeFBackend
from ksef_client.testing import sample_invoice

WARSAW = ZoneInfo("Europe/Warsaw")


def test_a_date_is_a_day_in_poland() -> None:
    winter = build_filters("Subject1", dt.date(2026, 1, 15), dt.date(2026, 1, 31))["dateRange"]
    assert winter["from"] == "2026-01-15T00:00:00+01:00"
    assert winter["to"] == "2026-01-31T23:59:59.999999+01:00"
    summer = build_filters("Subject1", dt.date(2026, 7, 1), dt.date(2026, 7, 31))["dateRange"]  # within 100 days
    assert summer["from"] == "2026-07-01T00:00:00+02:00"


@pytest.mark.parametrize("name", ["date_from", "date_to"])
def test_a_naive_datetime_is_refused_with_the_parameters_name(name: str) -> None:
    aware, naive = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 2)
    arguments = {"date_from": aware, "date_to": aware + dt.timedelta(days=1), name: naive}
    with pytest.raises(ValueError, match=f"^{name}: 2026-01-02T00:00:00 has no timezone"):
        build_filters("Subject1", **arguments)


def test_query_takes_a_date(ksef: KSeF, backend: KSeFBackend) -> None:
    with ksef.online_session() as session:
        session.send(sample_invoice("DAY/1"))
    ksef.sessions.wait(session.reference_number)
    today = dt.datetime.now(WARSAW).date()
    assert [r.invoice_number for r in ksef.invoices.query("Subject1", date_from=today)] == ["DAY/1"]
    with pytest.raises(ValueError, match="date_from"):
        ksef.invoices.query("Subject1", date_from=dt.datetime.now())


def test_a_session_upo_prints_its_pages_not_its_xml(ksef_data: Path) -> None:
    xml = (ksef_data / "upo-examples" / "kontekst-nip__upo-sesja-kontekst-id-nip.xml").read_bytes()
    upo = SessionUpo((parse_upo(xml),))
    text = repr(upo)
    assert text.startswith("SessionUpo(pages=(Upo(session_reference_number=")
    assert "<?xml" not in text and "b'" not in text and f"xml=<{len(xml)} bytes>" in text
    assert len(text) < 300


def test_generated_models_print_only_what_is_set() -> None:
    item = SessionInvoiceStatusResponse.from_dict(
        {
            "ordinalNumber": 1,
            "referenceNumber": "R",
            "invoiceHash": "h",
            "invoicingDate": "2026-11-25T10:00:00+00:00",
            "status": {"code": 200, "description": "ok"},
        }
    )
    text = repr(item)
    assert "Unset" not in text and "object at 0x" not in text and "additional_properties" not in text
    assert "status=InvoiceStatusInfo(code=200, description='ok')" in text
    assert repr(UNSET) == "UNSET"
    # Every generated model does it (the template's __repr__), not just this one.
    classes = [getattr(models, name) for name in models.__all__]
    attrs_classes = [c for c in classes if inspect.isclass(c) and hasattr(c, "__attrs_attrs__")]
    assert attrs_classes and all(c.__repr__ is short_repr for c in attrs_classes)
