"""Drive ksef-client (PyPI ``ksef-client``, imported as ``ksef_client``) against ksef-mock.

Run by ``peers/.venv-ksef-client/bin/python``, never by this project's venv (both packages are
called ``ksef_client``): ``python peers/drive_ksef_client.py INPUTS.json``.

``KsefClientOptions(base_url=...)`` points it at the emulator. One relaxation, in this process
only: ksef-client refuses any presigned URL on a loopback address in
``ksef_client.http._validate_presigned_url_security``, whatever its options say, and the
emulator's upload and export URLs are on 127.0.0.1. ``allow_emulator_presigned_urls()`` wraps that
check so that URLs on the emulator's own origin (scheme, host and port) pass; every other URL goes
through the original check unchanged.
"""

# One closure per flow, sharing the session state: main() is long by design.
# ruff: noqa: PLR0915

from __future__ import annotations

import datetime as dt
import importlib.metadata
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ksef_client.http
from _harness import Check, Recorder, check, load_inputs, poll
from ksef_client.services import AuthCoordinator, BatchSessionWorkflow, OnlineSessionWorkflow
from ksef_client.services.crypto import build_encryption_data
from ksef_client.services.workflows import ExportWorkflow
from ksef_client.utils.zip_utils import build_tar_gz, build_zip

from ksef_client import KsefApiError, KsefClient, KsefClientOptions
from ksef_client import models as m

FA3 = m.FormCode(system_code="FA (3)", schema_version="1-0E", value="FA")


def allow_emulator_presigned_urls(api_url: str) -> None:
    """Let presigned URLs on the emulator's origin through ksef-client's loopback refusal."""
    emulator = urlsplit(api_url)
    original = ksef_client.http._validate_presigned_url_security

    def validate(options: KsefClientOptions, url: str) -> None:
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port) == (emulator.scheme, emulator.hostname, emulator.port):
            return
        original(options, url)

    ksef_client.http._validate_presigned_url_security = validate


def documented(value: Any) -> bool:
    """ksef-client keeps an unknown enum value as a pseudo-member named ``UNKNOWN__n``."""
    return not str(getattr(value, "name", "")).startswith("UNKNOWN__")


def main(argv: list[str]) -> int:
    inputs = load_inputs(argv)
    api_url: str = inputs["api_url"]
    nip: str = inputs["nip"]
    wait: float = float(inputs["wait_timeout"])
    attempts = int(wait / 0.1)
    online_xml = [Path(p).read_bytes() for p in inputs["online_invoices"]]
    batch_xml = [Path(p).read_bytes() for p in inputs["batch_invoices"]]
    targz_xml = [Path(p).read_bytes() for p in inputs["targz_invoices"]]
    recorder = Recorder("ksef-client", importlib.metadata.version("ksef-client"), float(inputs["flow_timeout"]))

    allow_emulator_presigned_urls(api_url)
    options = KsefClientOptions(
        base_url=api_url, strict_presigned_url_validation=False, allow_private_network_presigned_urls=True
    )
    client = KsefClient(options)
    state: dict[str, Any] = {}

    def certificate(usage: m.PublicKeyCertificateUsage) -> str:
        return client.security.get_public_key_certificate_pem(usage)

    def login_token() -> str:
        result = AuthCoordinator(client.auth).authenticate_with_ksef_token(
            token=inputs["ksef_token"],
            public_certificate=certificate(m.PublicKeyCertificateUsage.KSEFTOKENENCRYPTION),
            context_identifier_type="nip",
            context_identifier_value=nip,
            poll_interval_seconds=0.1,
            max_attempts=attempts,
        )
        state["token_access"], state["token_refresh"] = result.access_token, result.refresh_token
        return "access token redeemed"

    def login_xades() -> str:
        result = AuthCoordinator(client.auth).authenticate_with_xades(
            context_identifier_type="nip",
            context_identifier_value=nip,
            subject_identifier_type="certificateSubject",
            certificate_pem=Path(inputs["cert_pem"]).read_text(),
            private_key_pem=Path(inputs["key_pem"]).read_text(),
            poll_interval_seconds=0.1,
            max_attempts=attempts,
        )
        state["xades_access"] = result.access_token
        return "access token redeemed"

    def login_xades_chain() -> str:
        try:
            AuthCoordinator(client.auth).authenticate_with_xades(
                context_identifier_type="nip",
                context_identifier_value=nip,
                subject_identifier_type="certificateSubject",
                certificate_pem=Path(inputs["cert_pem"]).read_text(),
                private_key_pem=Path(inputs["key_pem"]).read_text(),
                verify_certificate_chain=True,
                poll_interval_seconds=0.1,
                max_attempts=attempts,
            )
        except KsefApiError as error:
            return f"refused: {type(error).__name__}: {error}"[:200]
        except RuntimeError as error:  # its AuthCoordinator's way to report a failed auth status
            if not str(error).startswith("Authentication failed"):
                raise
            return f"refused: {error}"[:200]
        raise Check("logged in: a self-signed certificate passed with verifyCertificateChain=true")

    def token() -> str:
        # Later flows use whichever login worked (XAdES first): a failed login blocks nothing else.
        return str(state.get("xades_access") or state["token_access"])

    def symmetric_pem() -> str:
        return certificate(m.PublicKeyCertificateUsage.SYMMETRICKEYENCRYPTION)

    def online_send() -> str:
        session = OnlineSessionWorkflow(client.sessions).open_session(
            form_code=FA3, public_certificate=symmetric_pem(), access_token=token()
        )
        state["online_refs"] = [session.send_invoice(xml).reference_number for xml in online_xml]
        session.close()
        state["online_session"] = session
        return f"session {session.reference_number}, {len(online_xml)} invoices sent"

    def online_status() -> str:
        session = state["online_session"]
        numbers = []
        for ref in state["online_refs"]:
            status = poll(
                lambda ref=ref: session.get_invoice_status(ref),
                lambda s: bool(s.ksef_number) or s.status.code >= 400,
                wait,
            )
            check(status.ksef_number, f"invoice {ref}: {status.status.code} {status.status.description}")
            numbers.append(status.ksef_number)
        final = poll(session.get_status, lambda s: s.status.code >= 200, wait)
        check(final.status.code == 200, f"session status {final.status.code}")
        state["online_numbers"], state["online_final"] = numbers, final
        return f"session 200, KSeF numbers {', '.join(numbers)}"

    def online_invoice_upo() -> str:
        session = state["online_session"]
        upos = [session.get_invoice_upo_by_ref(ref) for ref in state["online_refs"]]
        for upo, number in zip(upos, state["online_numbers"], strict=True):
            check(number.encode() in upo, f"UPO without {number}")
        return f"{len(upos)} invoice UPOs ({sum(map(len, upos))} bytes)"

    def online_session_upo() -> str:
        final = state["online_final"]
        check(final.upo and final.upo.pages, "session status names no UPO page")
        pages = [state["online_session"].get_upo(page.reference_number) for page in final.upo.pages]
        for number in state["online_numbers"]:
            check(any(number.encode() in page for page in pages), f"session UPO without {number}")
        return f"{len(pages)} page(s)"

    def batch_send() -> str:
        archive = build_zip({f"invoice-{i}.xml": xml for i, xml in enumerate(batch_xml, 1)})
        session = BatchSessionWorkflow(client.sessions, client.http_client).open_session(
            form_code=FA3, zip_bytes=archive, public_certificate=symmetric_pem(), access_token=token()
        )
        session.upload_parts()
        session.close()
        final = poll(session.get_status, lambda s: s.status.code >= 200, wait)
        check(final.status.code == 200, f"session status {final.status.code}")
        check(final.successful_invoice_count == len(batch_xml), f"successful {final.successful_invoice_count}")
        state["batch_session"], state["batch_final"] = session, final
        return f"session {session.reference_number}, {final.successful_invoice_count} accepted"

    def batch_upo() -> str:
        final = state["batch_final"]
        check(final.upo and final.upo.pages, "session status names no UPO page")
        pages = [state["batch_session"].get_upo(page.reference_number) for page in final.upo.pages]
        return f"{len(pages)} page(s)"

    def batch_targz() -> str:
        archive = build_tar_gz({f"invoice-{i}.xml": xml for i, xml in enumerate(targz_xml, 1)})
        session = BatchSessionWorkflow(client.sessions, client.http_client).open_session(
            form_code=FA3,
            archive_bytes=archive,
            compression_type=m.CompressionType.TARGZ,
            public_certificate=symmetric_pem(),
            access_token=token(),
        )
        session.upload_parts()
        session.close()
        final = poll(session.get_status, lambda s: s.status.code >= 200, wait)
        check(
            final.status.code == 200,
            f"session status {final.status.code} {final.status.description} {final.status.details}",
        )
        check(final.successful_invoice_count == len(targz_xml), f"successful {final.successful_invoice_count}")
        return f"session {session.reference_number}, {final.successful_invoice_count} accepted"

    def sessions_filters() -> str:
        tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(timespec="seconds")
        page = client.sessions.get_sessions(
            session_type="Online", date_closed_from=tomorrow, page_size=100, access_token=token()
        )
        refs = [s.reference_number for s in page.sessions]
        ours = state["online_session"].reference_number
        check(
            ours not in refs,
            f"dateClosedFrom={tomorrow[:10]} still lists our session closed today ({len(refs)} listed)",
        )
        return f"{len(refs)} listed"

    def sessions_list() -> str:
        found = []
        for kind, key in (("Online", "online_session"), ("Batch", "batch_session")):
            if key not in state:
                continue
            page = client.sessions.get_sessions(session_type=kind, page_size=100, access_token=token())
            refs = [s.reference_number for s in page.sessions]
            check(state[key].reference_number in refs, f"{kind} session not in {refs}")
            found.append(kind)
        check(found, "no session to look for")
        return f"found the {' and '.join(found)} session(s)"

    def sessions_invoices() -> str:
        page = state["online_session"].list_invoices(page_size=10)
        numbers = sorted(i.ksef_number for i in page.invoices)
        check(numbers == sorted(state["online_numbers"]), f"KSeF numbers {numbers}")
        return f"{len(page.invoices)} invoices"

    def invoices_download() -> str:
        body = client.invoices.get_invoice_bytes(state["online_numbers"][0], access_token=token()).content
        check(body == online_xml[0], f"{len(body)} bytes, not the {len(online_xml[0])} sent")
        return f"{len(body)} bytes, identical"

    def expected_numbers() -> set[str]:
        numbers = set(state.get("online_numbers", []))
        if "batch_session" in state:
            numbers |= {i.ksef_number for i in state["batch_session"].list_invoices(page_size=10).invoices}
        return numbers

    def filters() -> m.InvoiceQueryFilters:
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(timespec="seconds")
        return m.InvoiceQueryFilters(
            subject_type=m.InvoiceQuerySubjectType.SUBJECT1,
            date_range=m.InvoiceQueryDateRange(date_type=m.InvoiceQueryDateType.INVOICING, from_=since),
        )

    def invoices_metadata() -> str:
        wanted = expected_numbers()
        page = client.invoices.query_invoice_metadata(filters(), access_token=token(), page_size=100)
        found = {i.ksef_number: i for i in page.invoices}
        check(wanted <= set(found), f"missing {sorted(wanted - set(found))}")
        # ksef-client keeps values it does not know; the flow checks that what it got is documented.
        odd = sorted({str(i.invoice_type.value) for i in found.values() if not documented(i.invoice_type)})
        check(not odd, f"invoiceType {odd} is not a value of the spec's InvoiceType enum")
        return f"{len(found)} invoices, invoiceType {sorted({i.invoice_type.value for i in found.values()})}"

    def invoices_export() -> str:
        wanted = expected_numbers()
        encryption = build_encryption_data(symmetric_pem())
        request = m.InvoiceExportRequest(encryption=encryption.encryption_info, filters=filters())
        reference = client.invoices.export_invoices(request, access_token=token()).reference_number
        status = poll(
            lambda: client.invoices.get_export_status(reference, access_token=token()),
            lambda s: s.status.code >= 200,
            wait,
        )
        check(status.status.code == 200 and status.package, f"export status {status.status.code}")
        result = ExportWorkflow(client.invoices, client.http_client).download_and_process_package(
            status.package, encryption
        )
        names = list(result.invoice_xml_files)
        check(result.metadata_raw is not None, "no _metadata.json")
        check({i.get("ksefNumber") for i in result.metadata_summaries} >= wanted, "_metadata.json lacks an invoice")
        check(all(any(n in name for name in names) for n in wanted), f"files {names}")
        odd = sorted({str(i.get("invoiceType")) for i in result.metadata_summaries} - {t.value for t in m.InvoiceType})
        check(not odd, f"_metadata.json invoiceType {odd} is not a value of the spec's InvoiceType enum")
        return f"{len(names)} invoice files, {len(result.metadata_summaries)} metadata entries"

    def invoices_export_targz() -> str:
        encryption = build_encryption_data(symmetric_pem())
        request = m.InvoiceExportRequest(
            encryption=encryption.encryption_info, filters=filters(), compression_type=m.CompressionType.TARGZ
        )
        reference = client.invoices.export_invoices(request, access_token=token()).reference_number
        status = poll(
            lambda: client.invoices.get_export_status(reference, access_token=token()),
            lambda s: s.status.code >= 200,
            wait,
        )
        check(status.status.code == 200 and status.package, f"export status {status.status.code}")
        said = status.package.compression_type
        check(said == m.CompressionType.TARGZ, f"asked for TarGz, the package says {getattr(said, 'value', said)!r}")
        result = ExportWorkflow(client.invoices, client.http_client).download_and_process_package(
            status.package, encryption
        )
        names = list(result.invoice_xml_files)
        check(all(any(n in name for name in names) for n in state["online_numbers"]), f"files {names}")
        return f"TarGz, {len(names)} invoice files"

    def limits() -> str:
        context = client.limits.get_context_limits(token())
        subject = client.limits.get_subject_limits(token())
        rates = client.rate_limits.get_rate_limits(token())
        check(context.online_session.max_invoices > 0, "online maxInvoices")
        online = context.online_session.max_invoices
        return f"online maxInvoices {online}, subject {subject!r:.40}, invoiceSend {rates.invoice_send.per_second}/s"

    def generate_token(permissions: list[m.TokenPermissionType], description: str) -> str:
        request = m.GenerateTokenRequest(permissions=permissions, description=description)
        reference = client.tokens.generate_token(request, access_token=token()).reference_number
        status = poll(
            lambda: client.tokens.get_token_status(reference, access_token=token()),
            lambda s: str(getattr(s.status, "value", s.status)) != "Pending",
            wait,
        )
        check(str(getattr(status.status, "value", status.status)) == "Active", f"token {reference}: {status.status}")
        return str(reference)

    def tokens() -> str:
        reference = generate_token([m.TokenPermissionType.INVOICEREAD], "make peers: token lifecycle")
        listed = [t.reference_number for t in client.tokens.list_tokens(access_token=token()).tokens]
        check(reference in listed, "the new token is not listed")
        client.tokens.revoke_token(reference, access_token=token())
        status = client.tokens.get_token_status(reference, access_token=token()).status
        check(str(getattr(status, "value", status)) == "Revoked", f"status after revoke: {status}")
        return f"{reference}: active, listed, revoked"

    def tokens_introspection() -> str:
        return generate_token([m.TokenPermissionType.INTROSPECTION], "make peers: introspection") + " active"

    def auth_refresh() -> str:
        refreshed = client.auth.refresh_access_token(state["token_refresh"])
        new = refreshed.access_token.token
        check(new and new != state["token_access"], "same access token")
        return "new access token"

    def auth_logout() -> str:
        listed = client.auth.get_active_sessions(access_token=state["token_access"]).items
        check(any(i.is_current for i in listed), f"no session marked isCurrent among {len(listed)}")
        client.auth.revoke_current_session(state["token_access"])
        try:
            client.auth.refresh_access_token(state["token_refresh"])
        except KsefApiError as error:
            return f"{len(listed)} listed; revoked; refresh refused ({type(error).__name__} {error.status_code})"
        raise Check("the refresh token still works after DELETE /auth/sessions/current")

    recorder.run_all(locals(), xades_logged_in=lambda: "xades_access" in state)
    client.close()
    recorder.write(inputs["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
