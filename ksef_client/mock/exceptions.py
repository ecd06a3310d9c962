"""Errors the emulator's backend raises; the HTTP layer renders them in KSeF's formats."""

from __future__ import annotations


class MockAPIError(Exception):
    """A KSeF error: HTTP status plus KSeF exception code and description."""

    status_code = 400

    def __init__(self, code: int, description: str, details: list[str] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details or []


class SchemaViolation(MockAPIError):
    """21405 raised by the spec validator (not by a business rule); marked with a response header
    so the conformance suite can tell the emulator's schema checks from its KSeF rules."""

    def __init__(self, details: list[str]) -> None:
        super().__init__(21405, "Błąd walidacji danych wejściowych.", details)


class UnreadableBody(MockAPIError):
    """21001, "Nieczytelna treść.": a body that is no JSON, on an operation whose 400 table lists
    that code ("21001 | Nieczytelna treść. | {szczegółowy opis błędu}", the spec)."""

    def __init__(self, detail: str) -> None:
        super().__init__(21001, "Nieczytelna treść.", [detail])


class NotFound(MockAPIError):
    """KSeF reports a missing session, invoice or UPO as 400 with a code."""


class Unauthorized(MockAPIError):
    """401: no, invalid or expired bearer token."""

    status_code = 401

    def __init__(self, detail: str) -> None:
        super().__init__(0, detail)


class UnsupportedMediaType(MockAPIError):
    """415: a request body in a media type the operation does not declare. KSeF's web framework
    (ASP.NET Core) refuses it before the operation runs; the spec declares no 415 (answers outside
    any operation, like the gateway's, which strict mode does not hold to the spec)."""

    status_code = 415

    def __init__(self, media_type: str, declared: tuple[str, ...]) -> None:
        sent = media_type or "(no Content-Type)"
        super().__init__(0, f"Unsupported Media Type: {sent}; this operation takes {', '.join(declared)}.")


class Gone(MockAPIError):
    """410: a status kept past its retention (api-changelog 2.4.0: "Po upływie okresu retencji
    odpytywanie statusu zwraca `410 Gone`"), answered as the spec's GoneProblemDetails."""

    status_code = 410

    def __init__(self) -> None:
        # The detail of the spec's example of a 410 (GET /invoices/exports/{referenceNumber}).
        super().__init__(0, "Operacja wygasła i nie jest już dostępna.")


class Forbidden(MockAPIError):
    """403: the token lacks a required permission."""

    status_code = 403

    def __init__(
        self, detail: str, reason_code: str = "missing-permissions", security: dict[str, object] | None = None
    ) -> None:
        super().__init__(0, detail)
        self.reason_code = reason_code
        self.security = security


_PER_WINDOW = {1.0: "sekundę", 60.0: "minutę", 3600.0: "godzinę"}


class TooManyRequests(MockAPIError):
    """429 with Retry-After; its detail in KSeF's words (the spec's example: "Przekroczono limit 20
    żądań na minutę. Spróbuj ponownie po 30 sekundach."), naming the limit group as ``GET
    /rate-limits`` does. ``window`` and ``limit``: the window (seconds) and the requests it allows,
    when known (not for an injected 429)."""

    status_code = 429

    def __init__(self, retry_after: int, group: str, window: float | None = None, limit: int | None = None) -> None:
        per = _PER_WINDOW.get(window) if window is not None else None
        over = f"limit {limit} żądań na {per}" if per is not None and limit is not None else "limit żądań"
        unit = "sekundzie" if retry_after == 1 else "sekundach"
        detail = f"Przekroczono {over} (grupa {group}). Spróbuj ponownie po {retry_after} {unit}."
        super().__init__(429, "Too Many Requests", [detail])
        self.retry_after = retry_after


class StrictModeViolation(Exception):
    """What the emulator built breaks the spec where no answer of ``/v2`` shows it (an export
    package's ``_metadata.json``): in strict mode the request is answered as a 500 naming it and
    the violation is recorded, as for an answer against the spec."""
