"""Test helpers: a fake clock, invoice XML, and a transport that records when requests were sent."""

from __future__ import annotations

import httpx

FA3_NS = "http://crd.gov.pl/wzor/2025/06/25/13775/"


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
    """A small FA(3)-shaped invoice carrying what KSeF reads (seller, kind, number, date)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Faktura xmlns="{FA3_NS}"><Naglowek/>'
        f"<Podmiot1><DaneIdentyfikacyjne><NIP>{seller}</NIP><Nazwa>Sprzedawca</Nazwa></DaneIdentyfikacyjne></Podmiot1>"
        f"<Fa><KodWaluty>PLN</KodWaluty><P_1>{issued}</P_1><P_2>{number}</P_2><RodzajFaktury>VAT</RodzajFaktury></Fa>"
        "</Faktura>"
    ).encode()


class RecordingTransport(httpx.BaseTransport):
    """Passes requests on and records (fake time, method, path) of each one sent."""

    def __init__(self, inner: httpx.BaseTransport, time: FakeTime) -> None:
        self.inner = inner
        self.time = time
        self.sent: list[tuple[float, str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self.time.now, request.method, request.url.path))
        return self.inner.handle_request(request)
