"""The emulator's invoice repository: metadata and exports say what the spec says (issue 16, 1 and 5)."""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
import zipfile
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ksef_client import KSeF
from ksef_client._generated.models import InvoiceType
from ksef_client.crypto import SymmetricKey, encryption_for
from ksef_client.mock import KSeFBackend
from ksef_client.mock.server import ThreadedServer
from ksef_client.mock.state.invoices import INVOICE_TYPES, pack_export, read_invoice_fields
from ksef_client.testing import sample_invoice
from tests.conftest import NIP
from tests.mock.conftest import invoice_status, open_online, send_online, sent_statuses, session_encryption

SPEC_INVOICE_TYPES = {member.value for member in InvoiceType}


def _send(ksef: KSeF, *invoices: bytes) -> None:
    with ksef.online_session() as session:
        for xml in invoices:
            session.send(xml)
    assert session.reference_number is not None
    ksef.sessions.wait(session.reference_number)


def _metadata_query(raw: httpx.Client) -> dict[str, Any]:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    body = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}}
    answer = raw.post("/invoices/query/metadata", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_metadata_invoice_type_is_a_value_of_the_spec_enum(ksef: KSeF, raw: httpx.Client) -> None:
    _send(ksef, sample_invoice("FV/1/2026"), sample_invoice("FV/2/2026"))
    types = {item["invoiceType"] for item in _metadata_query(raw)["invoices"]}
    assert types == {"Vat"}  # the spec's InvoiceType, not the invoice's RodzajFaktury "VAT"
    assert types <= SPEC_INVOICE_TYPES


def test_every_rodzaj_faktury_maps_into_the_spec_enum() -> None:
    assert set(INVOICE_TYPES.values()) <= SPEC_INVOICE_TYPES


@pytest.mark.parametrize("compression", ["Zip", "TarGz"])
def test_an_export_package_is_compressed_as_asked(ksef: KSeF, raw: httpx.Client, compression: str) -> None:
    _send(ksef, sample_invoice("FV/3/2026"))
    key = SymmetricKey.generate()
    keys = ksef.auth.public_key_certificates()

    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    body = {
        "encryption": encryption_for(key, keys), "compressionType": compression,
        "filters": {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}},
    }  # fmt: skip
    started = raw.post("/invoices/exports", json=body)
    assert started.status_code == 201, started.text
    status = raw.get(f"/invoices/exports/{started.json()['referenceNumber']}").json()
    package = status["package"]
    assert package["compressionType"] == compression
    part = package["parts"][0]
    assert part["partName"].endswith(".tar.gz.aes" if compression == "TarGz" else ".zip.aes")
    plain = key.decrypt(httpx.get(part["url"]).content)
    names, metadata = _unpack(plain, compression)
    assert len(names) == 1 and names[0].endswith(".xml")
    assert [m["invoiceType"] for m in metadata["invoices"]] == ["Vat"]


def _unpack(package: bytes, compression: str) -> tuple[list[str], dict[str, Any]]:
    if compression == "TarGz":
        with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as archive:
            files = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]
    else:
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    metadata = json.loads(files.pop("_metadata.json"))
    return sorted(files), metadata


def test_pack_export_writes_both_formats_with_the_same_files() -> None:
    assert _unpack(pack_export([], only_metadata=True, compression="TarGz"), "TarGz") == ([], {"invoices": []})
    assert _unpack(pack_export([], only_metadata=True), "Zip") == ([], {"invoices": []})


def test_the_page_that_reaches_the_cap_says_has_more_and_truncated(
    ksef: KSeF, raw: httpx.Client, backend: KSeFBackend
) -> None:
    # The spec's walk: "Gdy hasMore = true i isTruncated = true" -> narrow the dateRange. Before the
    # cap: hasMore only; at it, with records left over: both; a query within the cap: neither.
    _send(ksef, *(sample_invoice(f"CAP/{i}") for i in range(30)))
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    body = {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}}

    def flags(offset: int, limit: int) -> tuple[int, bool, bool]:
        backend.metadata_limit = limit
        answer = raw.post(f"/invoices/query/metadata?pageSize=10&pageOffset={offset}", json=body).json()
        return len(answer["invoices"]), answer["hasMore"], answer["isTruncated"]

    assert [flags(offset, 25) for offset in (0, 1, 2)] == [(10, True, False), (10, True, False), (5, True, True)]
    assert [flags(offset, 30) for offset in (1, 2)] == [(10, True, False), (10, False, False)]


def test_session_reads_is_the_number_of_polls_that_find_an_export_in_progress(
    ksef: KSeF, raw: httpx.Client, backend: KSeFBackend
) -> None:
    # The same knob as for sessions (docs/testing-with-the-emulator.md: in progress "for two status reads").
    _send(ksef, sample_invoice("FV/R/2"))
    backend.transitions.session_reads = 2
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    body = {
        "encryption": encryption_for(SymmetricKey.generate(), ksef.auth.public_key_certificates()),
        "filters": {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}},
    }  # fmt: skip
    ref = raw.post("/invoices/exports", json=body).json()["referenceNumber"]
    assert [raw.get(f"/invoices/exports/{ref}").json()["status"]["code"] for _ in range(3)] == [100, 100, 200]


def _started_export(ksef: KSeF, raw: httpx.Client, **request: Any) -> str:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    body = {
        "encryption": encryption_for(SymmetricKey.generate(), ksef.auth.public_key_certificates()),
        "filters": {"subjectType": "Subject1", "dateRange": {"dateType": "Invoicing", "from": since}}, **request,
    }  # fmt: skip
    started = raw.post("/invoices/exports", json=body)
    assert started.status_code == 201, started.text
    return str(started.json()["referenceNumber"])


@pytest.mark.parametrize(
    "request_fields",
    [{}, {"compressionType": "TarGz"}, {"onlyMetadata": True}],
    ids=["zip", "targz", "only-metadata"],
)
def test_an_export_that_matches_nothing_has_no_parts(
    ksef: KSeF, raw: httpx.Client, request_fields: dict[str, Any]
) -> None:
    # KSeF (CIRFMF/ksef-api#466): "Przy eksporcie, jeżeli nie ma żadnych faktur to w `package`
    # będzie: "invoiceCount": 0, "size": 0, "parts": []" (the spec: InvoicePackage.size minimum 0,
    # InvoicePackagePart.partSize minimum 1). Was: one part, a package holding only _metadata.json.
    ref = _started_export(ksef, raw, **request_fields)
    package = raw.get(f"/invoices/exports/{ref}").json()["package"]
    assert (package["invoiceCount"], package["size"], package["parts"], package["isTruncated"]) == (0, 0, [], False)


def test_every_status_read_gives_fresh_part_links_that_expire_on_the_emulators_clock(
    ksef: KSeF, raw: httpx.Client, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spec, InvoicePackagePart.url: "Link jest generowany dynamicznie w momencie odpytania o
    # status operacji eksportu"; expirationDate: "Po upływie tego momentu link przestaje być
    # aktywny". Was: the links were made once, when the package was built.
    _send(ksef, sample_invoice("FV/L/1"))
    ref = _started_export(ksef, raw)
    now = backend.clock()
    monkeypatch.setattr(backend, "clock", lambda: now)
    first = raw.get(f"/invoices/exports/{ref}").json()
    monkeypatch.setattr(backend, "clock", lambda: now + dt.timedelta(minutes=10))  # the token lives on
    second = raw.get(f"/invoices/exports/{ref}").json()
    (old,), (new,) = first["package"]["parts"], second["package"]["parts"]
    assert old["url"] != new["url"] and {k: v for k, v in old.items() if k not in ("url", "expirationDate")} == {
        k: v for k, v in new.items() if k not in ("url", "expirationDate")
    }
    assert dt.datetime.fromisoformat(old["expirationDate"]) == now + dt.timedelta(hours=1)
    assert dt.datetime.fromisoformat(new["expirationDate"]) == now + dt.timedelta(minutes=70)
    assert first["completedDate"] == second["completedDate"]  # "Data zakończenia przetwarzania"
    assert httpx.get(old["url"]).content == httpx.get(new["url"]).content  # both live
    monkeypatch.setattr(backend, "clock", lambda: now + dt.timedelta(minutes=61))
    assert httpx.get(old["url"]).status_code == 403 and httpx.get(new["url"]).status_code == 200


def test_permanent_storage_comes_after_acquisition(raw: httpx.Client) -> None:
    # permanentStorageDate: "Data trwałego zapisu faktury w repozytorium KSeF. [...] zawsze późniejsza
    # niż acquisitionDate" (the spec, SessionInvoiceStatusResponse); the metadata say the same.
    ref, key = open_online(raw)
    sent = send_online(raw, ref, key, sample_invoice("FV/P/1"))
    status = invoice_status(raw, ref, sent.json()["referenceNumber"])
    acquired, stored = (dt.datetime.fromisoformat(status[k]) for k in ("acquisitionDate", "permanentStorageDate"))
    assert stored > acquired
    [record] = _metadata_query(raw)["invoices"]
    assert dt.datetime.fromisoformat(record["permanentStorageDate"]) == stored
    assert dt.datetime.fromisoformat(record["acquisitionDate"]) == acquired


def _metadata(raw: httpx.Client, date_type: str, **range_fields: Any) -> dict[str, Any]:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    body = {"subjectType": "Subject1", "dateRange": {"dateType": date_type, "from": since, **range_fields}}
    answer = raw.post("/invoices/query/metadata", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_storage_reads_hold_a_numbered_invoice_out_of_permanent_storage(
    raw: httpx.Client, backend: KSeFBackend
) -> None:
    # SessionInvoiceStatusResponse.permanentStorageDate: "Wartość uzupełniana asynchronicznie w
    # momencie trwałego zapisu [...] Podczas sprawdzania statusu może być jeszcze niedostępna";
    # GET /invoices/ksef/{ksefNumber}, 400: "21165 | Faktura o podanym numerze KSeF nie jest jeszcze
    # dostępna. | Faktura o numerze KSeF {ksefNumber} została przetworzona, ale nie jest jeszcze
    # dostępna do pobrania. Spróbuj ponownie później." The emulator stored every invoice as it
    # numbered it, so a client that downloads at once never met either.
    backend.transitions.storage_reads = 2
    ref, key = open_online(raw)
    sent = send_online(raw, ref, key, sample_invoice("FV/S/1")).json()["referenceNumber"]
    first = invoice_status(raw, ref, sent)  # read 1
    assert first["status"]["code"] == 200 and first["ksefNumber"] and "permanentStorageDate" not in first
    number = first["ksefNumber"]
    refused = raw.get(f"/invoices/ksef/{number}")  # read 2
    assert refused.status_code == 400
    assert refused.json()["exception"]["exceptionDetailList"] == [{
        "exceptionCode": 21165, "exceptionDescription": "Faktura o podanym numerze KSeF nie jest jeszcze dostępna.",
        "details": [f"Faktura o numerze KSeF {number} została przetworzona, ale nie jest jeszcze dostępna do "
                    "pobrania. Spróbuj ponownie później."],
    }]  # fmt: skip
    for date_type in ("PermanentStorage", "Invoicing"):  # an InvoiceMetadata record has its storage date
        assert _metadata(raw, date_type)["invoices"] == []
    stored = invoice_status(raw, ref, sent)  # read 3: stored now
    assert dt.datetime.fromisoformat(stored["permanentStorageDate"]) > dt.datetime.fromisoformat(
        stored["acquisitionDate"]
    )
    assert raw.get(f"/invoices/ksef/{number}").status_code == 200
    [record] = _metadata(raw, "PermanentStorage")["invoices"]
    assert record["permanentStorageDate"] == stored["permanentStorageDate"]
    backend.transitions.storage_reads = 0  # the default: stored as numbered, as before
    at_once = send_online(raw, ref, key, sample_invoice("FV/S/2")).json()["referenceNumber"]
    assert "permanentStorageDate" in invoice_status(raw, ref, at_once)


def test_a_held_back_invoice_is_stored_after_storage_delay_on_the_emulators_clock(
    raw: httpx.Client, backend: KSeFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reads or time, whichever comes first (as a new KSeF token's activation): a client that never
    # reads the invoice again still finds it stored a while later. The HWM an earlier query gave stays
    # below the storage date, so a window from it does not miss the invoice.
    backend.transitions.storage_reads = 1000
    now = backend.clock()
    monkeypatch.setattr(backend, "clock", lambda: now)
    ref, key = open_online(raw)
    send_online(raw, ref, key, sample_invoice("FV/S/3"))
    before = _metadata(raw, "PermanentStorage", restrictToPermanentStorageHwmDate=True)
    assert before["invoices"] == []
    later = now + dt.timedelta(seconds=backend.transitions.storage_delay)
    monkeypatch.setattr(backend, "clock", lambda: later)
    raw.headers["Authorization"] = f"Bearer {backend.mint_access_token(NIP)}"
    after = _metadata(raw, "PermanentStorage", **{"from": before["permanentStorageHwmDate"]})
    [record] = after["invoices"]
    assert raw.get(f"/invoices/ksef/{record['ksefNumber']}").status_code == 200
    reported = dt.datetime.fromisoformat(before["permanentStorageHwmDate"])
    assert dt.datetime.fromisoformat(record["permanentStorageDate"]) >= reported


def test_storage_reads_over_the_control_endpoint(ksef_server: ThreadedServer, backend: KSeFBackend) -> None:
    with httpx.Client(base_url=ksef_server.base_url.removesuffix("/v2")) as http:
        answer = http.post("/_mock/transitions", json={"storageReads": 3, "storageDelay": 60}).json()
    assert (answer["storageReads"], answer["storageDelay"]) == (3, 60.0)
    assert (backend.transitions.storage_reads, backend.transitions.storage_delay) == (3, 60.0)


def test_a_comment_inside_a_value_is_no_part_of_it(ksef: KSeF) -> None:
    # XML 1.0 (2.5): comments "are not part of the document's character data", so the numbers
    # "FV/7<!-- s -->/A" and "FV/7<!-- s -->/B" are FV/7/A and FV/7/B: two invoices, not a 440
    # duplicate (the emulator read lxml's .text, the text before the comment: FV/7 twice).
    first, second = (
        sample_invoice(f"FV/7/{suffix}", net="2051.00").replace(
            f"<P_2>FV/7/{suffix}</P_2>".encode(), f"<P_2>FV/7<!-- s -->/{suffix}</P_2>".encode()
        )
        for suffix in "AB"
    )
    assert b"<!-- s -->" in first
    assert sent_statuses(ksef, [first, second]) == [(200, []), (200, [])]
    split_gross = first.replace(b"<P_15>2522.73</P_15>", b"<P_15>25<!-- x -->22.73</P_15>")
    assert split_gross != first
    fields = read_invoice_fields(split_gross)
    assert (fields.number, fields.gross) == ("FV/7/A", Decimal("2522.73"))


def test_comments_between_the_elements_of_an_invoice_leave_it_as_it_is(ksef: KSeF) -> None:
    # Was: a comment among Fa's children (where XML and the XSD allow one) got the invoice refused
    # with "Invalid input tag of type <class 'cython_function_or_method'>" (the amounts were summed
    # over every child node, the comment's tag a function). Comments are no part of the data.
    plain = sample_invoice("FV/C/1", net="2051.00")
    commented = (
        sample_invoice("FV/C/2", net="2051.00")
        .replace(b"<P_2>", b"<!-- number --><P_2>", 1)
        .replace(b"<P_13_1>", b"<!-- net --><P_13_1>", 1)
        .replace(b"<Podmiot1>", b"<Podmiot1><!-- seller -->", 1)
    )
    assert commented.count(b"<!--") == 3
    assert sent_statuses(ksef, [commented]) == [(200, [])]
    read, expected = read_invoice_fields(commented), read_invoice_fields(plain)
    assert (read.number, read.seller, read.net, read.vat_pln, read.gross) == (
        "FV/C/2", expected.seller, expected.net, expected.vat_pln, expected.gross,
    )  # fmt: skip
    assert read.net == Decimal("2051.00")


# Spec 2.9.0, InvoiceQueryFilters.dateRange: "Maksymalny dozwolony okres wynosi 100 dni w strefie
# UTC"; InvoiceQueryDateRange.to: "Jeśli nie zostanie podana, przyjmowana jest bieżąca data i czas
# w UTC". The emulator allowed 92 days and checked only ranges with a `to`: an open range from 200
# days back passed, so the SDK's sync() never learnt KSeF refuses it.
@pytest.mark.parametrize("path", ["/invoices/query/metadata", "/invoices/exports"])
@pytest.mark.parametrize(("days", "with_to", "allowed"), [
    (95, True, True), (100, True, True), (101, True, False), (99, False, True), (101, False, False),
    (200, False, False),
])  # fmt: skip
def test_date_ranges_are_held_to_100_days_an_open_one_counted_to_now(
    raw: httpx.Client, path: str, days: int, with_to: bool, allowed: bool
) -> None:
    now = dt.datetime.now(dt.UTC)
    date_range = {"dateType": "Invoicing", "from": (now - dt.timedelta(days=days)).isoformat()}
    if with_to:
        date_range["to"] = now.isoformat()
    filters = {"subjectType": "Subject1", "dateRange": date_range}
    key = SymmetricKey.generate()
    body = filters if path.endswith("metadata") else {"encryption": session_encryption(key), "filters": filters}
    answer = raw.post(path, json=body)
    if allowed:
        assert answer.status_code in (200, 201), answer.text
    else:
        assert answer.status_code == 400
        assert answer.json()["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21405


def test_collective_identifier_queries_are_held_to_100_days(raw: httpx.Client) -> None:
    # CollectiveIdentifiersQueryRequest.dateCreatedFrom: "maksymalny przedział czasu to 100 dni"
    # (the SDK checked it, the emulator took any range).
    now = dt.datetime.now(dt.UTC)
    for days, status in ((100, 200), (101, 400)):
        body = {"dateCreatedFrom": (now - dt.timedelta(days=days)).isoformat(), "dateCreatedTo": now.isoformat()}
        answer = raw.post("/collective-identifiers/query", json=body)
        assert answer.status_code == status, answer.text
    backwards = {"dateCreatedFrom": now.isoformat(), "dateCreatedTo": (now - dt.timedelta(days=1)).isoformat()}
    assert raw.post("/collective-identifiers/query", json=backwards).status_code == 400
