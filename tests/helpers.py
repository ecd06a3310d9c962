"""Test helpers: a fake clock, invoice XML, and a transport that records when requests were sent."""

from __future__ import annotations

import httpx

from ksef_client.testing import sample_invoice


class FakeTime:
    """``clock`` and ``sleep`` for clients: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def invoice_xml(number: str, seller: str = "5265877635", issued: str = "2026-11-20") -> bytes:
    """A valid FA(3) invoice (the emulator checks the XSD) with the given key fields."""
    return sample_invoice(number, seller_nip=seller, issue_date=issued)


class RecordingTransport(httpx.BaseTransport):
    """Passes requests on and records (fake time, method, path) of each one sent."""

    def __init__(self, inner: httpx.BaseTransport, time: FakeTime) -> None:
        self.inner = inner
        self.time = time
        self.sent: list[tuple[float, str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self.time.now, request.method, request.url.path))
        return self.inner.handle_request(request)
