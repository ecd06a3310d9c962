"""What a client shares with its ``with_options`` copies: the login's tokens, the public keys."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from ksef_client.crypto import PublicKeyCertificate


class TokenHolder:
    """The current access and refresh tokens; never shown in reprs or logs.

    ``lock`` (threads) and ``async_lock`` (tasks) serialise refreshes (``_auth.BearerAuth``).

    ``generation`` counts the logins the holder has held: a login, ``auth.resume`` and the
    ``access_token`` setter each start a new one (``replace``); a refresh does not. A refresh
    answer is applied only to the generation it was asked for (``refreshed``): a login installed
    while a refresh was under way is not overwritten by the old login's new access token.
    """

    # Refresh this long before the access token's expiry, so no request goes out with a dying token.
    REFRESH_MARGIN = dt.timedelta(seconds=60)

    def __init__(self, token: str | None, refresh_token: str | None = None) -> None:
        self.token = token
        self.refresh_token = refresh_token
        self.valid_until: dt.datetime | None = None
        # The login's context ``(type, value)`` when the client logged in itself; ``None`` for a
        # token given as it is (its context is not readable from it). KSeF counts rate limits
        # per context: clients of one context share their throttle (``_throttle.Pacing``).
        self.context: tuple[str, str] | None = None
        self.generation = 0
        # Why the login has no refresh token any more (KSeF refused it, or its session was
        # revoked), until another login replaces it: a 401 then says to log in again.
        self.ended: str | None = None
        self.lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None
        # Makes each change below one step for threads (held only while fields are assigned).
        self._guard = threading.Lock()

    @property
    def async_lock(self) -> anyio.Lock:
        """The refresh lock of an async client's tasks (made on first use, in its event loop)."""
        if self._async_lock is None:
            self._async_lock = anyio.Lock()
        return self._async_lock

    def __repr__(self) -> str:
        return (
            f"TokenHolder(token={'set' if self.token else None}, refresh_token={'set' if self.refresh_token else None})"
        )

    def replace(
        self,
        token: str | None,
        valid_until: dt.datetime | None = None,
        refresh_token: str | None = None,
        context: tuple[str, str] | None = None,
    ) -> None:
        """Make this the client's login (a new generation): whatever an earlier login left, its
        refresh token included, is dropped, and a refresh of it under way is not applied."""
        with self._guard:
            self.generation += 1
            self.token, self.valid_until, self.refresh_token = token, _aware(valid_until), refresh_token
            self.context, self.ended = context, None

    def set_unrefreshable(self, token: str | None) -> None:
        """Replace the login by a bare access token: no refresh token, expiry unknown."""
        self.replace(token)

    def for_refresh(self) -> tuple[int, str | None]:
        """The generation and its refresh token, read together (a refresh is asked with these)."""
        with self._guard:
            return self.generation, self.refresh_token

    def refreshed(self, generation: int, token: str, valid_until: dt.datetime | None) -> bool:
        """Store the access token a refresh of ``generation`` brought, unless another login has
        replaced that one meanwhile (then the answer is dropped: ``False``)."""
        with self._guard:
            if self.generation != generation:
                return False
            self.token, self.valid_until = token, _aware(valid_until)
            return True

    def end_refreshing(self, generation: int, reason: str) -> None:
        """Drop the refresh token of ``generation`` (KSeF refused it, or its session was revoked),
        saying why in ``ended``; nothing when another login has replaced that one."""
        with self._guard:
            if self.generation == generation:
                self.refresh_token, self.ended = None, reason

    def expiring(self, now: dt.datetime) -> bool:
        """Whether the access token expires within the margin (unknown expiry: no)."""
        return self.valid_until is not None and self.valid_until - now <= self.REFRESH_MARGIN


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@dataclass
class KeyCache:
    """The Ministry's public key certificates once fetched (``ksef.auth.public_key_certificates``),
    shared like the tokens.

    They are fetched again when ``max_age`` seconds (on the client's clock) have passed since
    ``fetched_at``, and at once when KSeF refuses the key they hold (``resources.auth.with_keys``).
    """

    keys: list[PublicKeyCertificate] | None = None
    fetched_at: float | None = None
    # KSeF rotates keys rarely, and announces a planned rotation ahead; a refused key is fetched
    # again anyway, so an hour only bounds how long a client keeps an announced key unused.
    max_age: float = 3600.0

    def fresh(self, now: float) -> bool:
        """Whether the keys held may still be used at ``now`` without fetching them again."""
        return self.keys is not None and self.fetched_at is not None and now - self.fetched_at < self.max_age
