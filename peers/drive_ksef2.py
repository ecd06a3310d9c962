"""Drive ksef2 (PyPI ``ksef2``, imported as ``ksef2``) against ksef-mock through its public API.

Run by ``peers/.venv-ksef2/bin/python`` (Python >= 3.12), never by this project's venv:
``python peers/drive_ksef2.py INPUTS.json``. ``peers/run.py`` writes the inputs and reads the
JSON results.

ksef2 has no base-URL option: ``Client(Environment.TEST, http_client=...)`` takes an
``httpx.Client`` whose transport here rewrites ``https://api-test.ksef.mf.gov.pl`` to the
emulator on loopback. Presigned URLs the emulator hands out (uploads, export parts) already point
at loopback and pass through unchanged. Nothing in ksef2 is patched.
"""

# One closure per flow, sharing the session state: main() is long by design.
# ruff: noqa: PLR0915

from __future__ import annotations

import datetime as dt
import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import httpx
from _harness import Check, NotSupported, Recorder, check, load_inputs
from ksef2 import Client, Environment, FormSchema, KSeFApiError, KSeFAuthError, TransportConfig
from ksef2.models import InvoicesFilter, ListSessionsQuery
from ksef2.xades import XAdESCredentials

TEST_HOST = "api-test.ksef.mf.gov.pl"


class LoopbackTransport(httpx.BaseTransport):
    """Send what ksef2 addresses to KSeF TEST to the emulator instead (scheme, host and port)."""

    def __init__(self, api_url: str) -> None:
        self.target = httpx.URL(api_url)
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == TEST_HOST:
            request.url = request.url.copy_with(scheme=self.target.scheme, host=self.target.host, port=self.target.port)
            request.headers["Host"] = f"{self.target.host}:{self.target.port}"
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def main(argv: list[str]) -> int:
    inputs = load_inputs(argv)
    nip: str = inputs["nip"]
    wait: float = float(inputs["wait_timeout"])
    interval = 0.1
    online_xml = [Path(p).read_bytes() for p in inputs["online_invoices"]]
    batch_xml = [Path(p).read_bytes() for p in inputs["batch_invoices"]]
    recorder = Recorder("ksef2", importlib.metadata.version("ksef2"), float(inputs["flow_timeout"]))

    http = httpx.Client(transport=LoopbackTransport(inputs["api_url"]), timeout=30.0)
    client = Client(Environment.TEST, http_client=http, transport_config=TransportConfig())
    state: dict[str, Any] = {}

    def login_token() -> str:
        state["token_auth"] = client.authentication.with_token(
            ksef_token=inputs["ksef_token"], nip=nip, timeout=wait, poll_interval=interval
        )
        return "access token redeemed"

    def login_xades() -> str:
        credentials = XAdESCredentials.from_pem(
            Path(inputs["cert_pem"]).read_bytes(), Path(inputs["key_pem"]).read_bytes()
        )
        state["xades_auth"] = client.authentication.with_xades(
            nip=nip, credentials=credentials, timeout=wait, poll_interval=interval
        )
        return "access token redeemed"

    def login_xades_chain() -> str:
        credentials = XAdESCredentials.from_pem(
            Path(inputs["cert_pem"]).read_bytes(), Path(inputs["key_pem"]).read_bytes()
        )
        try:
            client.authentication.with_xades(
                nip=nip, credentials=credentials, verify_chain=True, timeout=wait, poll_interval=interval
            )
        except (KSeFAuthError, KSeFApiError) as error:
            return f"refused: {type(error).__name__}: {error}"[:200]
        raise Check("logged in: a self-signed certificate passed with verifyCertificateChain=true")

    def auth() -> Any:
        # Later flows use whichever login worked (XAdES first): a failed login blocks nothing else.
        return state.get("xades_auth") or state["token_auth"]

    def online_send() -> str:
        with auth().online_session(form_code=FormSchema.FA3) as session:
            state["online_submissions"] = [session.send_invoice(xml) for xml in online_xml]
            state["online_state"] = session.resume_state()
        state["online_session"] = session
        return f"session {session.reference_number}, {len(online_xml)} invoices sent"

    def online_status() -> str:
        statuses = [s.wait(timeout=wait, poll_interval=interval) for s in state["online_submissions"]]
        numbers = [s.ksef_number for s in statuses]
        check(all(numbers), f"KSeF numbers: {numbers}")
        final = state["online_session"].wait(timeout=wait, poll_interval=interval)
        check(final.status.code == 200, f"session status {final.status.code}")
        state["online_numbers"] = numbers
        return f"session 200, KSeF numbers {', '.join(numbers)}"

    def online_invoice_upo() -> str:
        upos = [s.download_upo() for s in state["online_submissions"]]
        for upo, number in zip(upos, state["online_numbers"], strict=True):
            check(number.encode() in upo, f"UPO without {number}")
        return f"{len(upos)} invoice UPOs ({sum(map(len, upos))} bytes)"

    def online_session_upo() -> str:
        pages = state["online_session"].download_upo()
        check(pages, "no UPO page")
        for number in state["online_numbers"]:
            check(any(number.encode() in page for page in pages), f"session UPO without {number}")
        return f"{len(pages)} page(s)"

    def batch_send() -> str:
        session = auth().batch.submit(batch_xml)
        final = session.wait(timeout=wait, poll_interval=interval)
        check(final.status.code == 200, f"session status {final.status.code}")
        check(final.successful_invoice_count == len(batch_xml), f"successful {final.successful_invoice_count}")
        state["batch_session"] = session
        return f"session {session.reference_number}, {final.successful_invoice_count} accepted"

    def batch_upo() -> str:
        pages = state["batch_session"].download_upo()
        check(pages, "no UPO page")
        return f"{len(pages)} page(s)"

    def batch_targz() -> str:
        raise NotSupported("batch.prepare()/submit() build ZIP packages only; no public API builds a TarGz batch")

    def sessions_filters() -> str:
        tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        query = ListSessionsQuery(session_type="online", date_closed_from=tomorrow)
        refs = [s.reference_number for s in auth().invoice_sessions.list("online", params=query)]
        ours = state["online_session"].reference_number
        check(
            ours not in refs,
            f"dateClosedFrom={tomorrow:%Y-%m-%d} still lists our session closed today ({len(refs)} listed)",
        )
        return f"{len(refs)} listed"

    def sessions_list() -> str:
        found = []
        for kind, key in (("online", "online_session"), ("batch", "batch_session")):
            if key not in state:
                continue
            refs = [s.reference_number for s in auth().invoice_sessions.list(kind)]
            check(state[key].reference_number in refs, f"{kind} session not in {refs}")
            found.append(kind)
        check(found, "no session to look for")
        return f"found the {' and '.join(found)} session(s)"

    def sessions_invoices() -> str:
        with auth().online_session(state=state["online_state"]) as session:
            page = session.list_invoices(page_size=10)
        numbers = sorted(i.ksef_number for i in page.invoices)
        check(numbers == sorted(state["online_numbers"]), f"KSeF numbers {numbers}")
        return f"{len(page.invoices)} invoices"

    def invoices_download() -> str:
        number = state["online_numbers"][0]
        body = auth().invoices.download(number)
        check(body == online_xml[0], f"{len(body)} bytes, not the {len(online_xml[0])} sent")
        return f"{len(body)} bytes, identical"

    def expected_numbers() -> set[str]:
        numbers = set(state.get("online_numbers", []))
        if "batch_session" in state:
            with auth().batch_session(state=state["batch_session"].resume_state()) as session:
                numbers |= {i.ksef_number for i in session.list_invoices(page_size=10).invoices}
        return numbers

    def filters() -> InvoicesFilter:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        return InvoicesFilter.for_seller(date_from=since, date_type="invoicing_date")

    def invoices_metadata() -> str:
        wanted = expected_numbers()
        found = {m.ksef_number: m for m in auth().invoices.search(filters())}
        check(wanted <= set(found), f"missing {sorted(wanted - set(found))}")
        kinds = sorted({str(m.invoice_type) for m in found.values()})
        return f"{len(found)} invoices, invoiceType {kinds}"

    def invoices_export() -> str:
        wanted = expected_numbers()
        package = auth().invoices.export(filters()).wait(timeout=wait, poll_interval=interval)
        names = [name for name, _ in package.invoices()]
        metadata = package.metadata
        check(metadata is not None, "no _metadata.json")
        check({m.ksef_number for m in metadata or []} >= wanted, "_metadata.json lacks an invoice")
        check(all(any(n in name for name in names) for n in wanted), f"files {names}")
        return f"{len(names)} invoice files, {len(metadata or [])} metadata entries"

    def invoices_export_targz() -> str:
        exported = (
            auth().invoices.export(filters(), compression_type="tar_gz").wait(timeout=wait, poll_interval=interval)
        )
        said = exported.package.compression_type if exported.package else None
        check(said == "tar_gz", f"asked for TarGz, the package says {said!r}")
        names = [name for name, _ in exported.invoices()]
        check(all(any(n in name for name in names) for n in state["online_numbers"]), f"files {names}")
        return f"TarGz, {len(names)} invoice files"

    def limits() -> str:
        context = auth().limits.get_context_limits()
        subject = auth().limits.get_subject_limits()
        rates = auth().limits.get_api_rate_limits()
        check(context.online_session.max_invoices > 0, "online maxInvoices")
        online = context.online_session.max_invoices
        return f"online maxInvoices {online}, subject {subject!r:.40}, invoiceSend {rates.invoice_send.per_second}/s"

    def tokens() -> str:
        generated = auth().tokens.generate(permissions=["invoice_read"], description="make peers: token lifecycle")
        check(generated.token, "no secret")
        generated.wait(timeout=wait, poll_interval=interval)
        listed = [t.reference_number for t in auth().tokens.list()]
        check(generated.reference_number in listed, "the new token is not listed")
        auth().tokens.revoke(reference_number=generated.reference_number)
        status = auth().tokens.get_status(reference_number=generated.reference_number)
        check("revoked" in str(status.status).lower(), f"status after revoke: {status.status}")
        return f"{generated.reference_number}: active, listed, {status.status}"

    def tokens_introspection() -> str:
        generated = auth().tokens.generate(permissions=["introspection"], description="make peers: introspection")
        generated.wait(timeout=wait, poll_interval=interval)
        return f"{generated.reference_number} active"

    def auth_refresh() -> str:
        login = state["token_auth"]
        refreshed = client.authentication.refresh(refresh_token=login.refresh_token)
        check(refreshed.access_token.token and refreshed.access_token.token != login.access_token, "same access token")
        return "new access token"

    def auth_logout() -> str:
        login = state["token_auth"]
        listed = list(login.sessions.list())
        check(listed, "no authentication session listed")
        login.sessions.terminate_current()
        try:
            client.authentication.refresh(refresh_token=login.refresh_token)
        except (KSeFAuthError, KSeFApiError) as error:
            return f"{len(listed)} listed; revoked; refresh refused ({type(error).__name__})"
        raise Check("the refresh token still works after DELETE /auth/sessions/current")

    recorder.run_all(locals(), xades_logged_in=lambda: "xades_auth" in state)
    recorder.write(inputs["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
