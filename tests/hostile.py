"""Hostile servers for tests: the emulator with a response swapped (``Tamper``), endless or
dripping bodies (``EndlessBody``), and a raw socket server that answers as slowly as it likes
(``RawServer``)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

Swap = Callable[[httpx.Request, httpx.Response], httpx.Response | None]


class Tamper(httpx.BaseTransport):
    """Sends through ``inner`` (real HTTP to the emulator), then lets ``swap`` replace the answer."""

    def __init__(self, swap: Swap, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.swap = swap
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        response = self.inner.handle_request(request)
        replaced = self.swap(request, response)
        if replaced is None:
            return response
        response.close()
        return replaced

    def close(self) -> None:
        self.inner.close()


def json_swap(method: str, path_part: str, change: Callable[[Any], Any]) -> Swap:
    """A ``Swap`` that rewrites the JSON answer of requests whose path contains ``path_part``."""

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.method != method or path_part not in request.url.path or response.status_code != 200:
            return None
        body = json.loads(response.read())
        return httpx.Response(200, json=change(body), request=request)

    return swap


class EndlessBody(httpx.SyncByteStream):
    """A body that never ends (or ends after ``total`` bytes); ``sent`` counts what was produced."""

    def __init__(self, chunk: bytes = b"A" * 65536, total: int | None = None) -> None:
        self.chunk, self.total, self.sent = chunk, total, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.total is None or self.sent < self.total:
            self.sent += len(self.chunk)
            yield bytes(bytearray(self.chunk))  # a new object each time, as from a socket (memory is measured)


class RawServer:
    """A TCP server on 127.0.0.1 whose ``answer(connection)`` writes whatever it likes, as slowly
    as it likes (one thread per connection)."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                self.answer(connection)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def drip(seconds_per_byte: float, stop: threading.Event | None = None) -> Callable[[socket.socket], None]:
    """Headers at once, then one byte of a long body every ``seconds_per_byte``."""

    def answer(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(100000):
            time.sleep(seconds_per_byte)
            connection.sendall(b" ")

    return answer


def silent(seconds: float = 60.0) -> Callable[[socket.socket], None]:
    """Accepts the request and says nothing."""

    def answer(connection: socket.socket) -> None:
        time.sleep(seconds)

    return answer
