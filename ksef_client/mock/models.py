"""``KSeFBackend``: all state of one emulated KSeF, as components (moto's backend, by composition).

No HTTP here: the routes (``mock/routes/``) parse requests, call a component and render what it
returns; errors are ``exceptions.MockAPIError`` subclasses carrying KSeF's codes.

============  ===================================================================
component     what it owns (``mock/state/<module>.py``)
============  ===================================================================
auth          challenges, auth operations, KSeF tokens, JWTs
sessions      online and batch sessions, their invoices, status, UPO
invoices      accepted invoices, metadata query, exports
permissions   grants, the logins they open, the right to issue for a seller
certificates  KSeF certificates and their requests
collective    collective identifiers
testdata      ``/testdata/*`` records, limit overrides, Peppol providers
storage       presigned downloads and upload slots
============  ===================================================================

The facade keeps the documented test shortcuts: ``mint_access_token``, ``faults``,
``transitions``, ``rate_limits``, ``reset``, ``clock`` and the size settings.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import MISSING, fields, is_dataclass, replace
from typing import Any, NamedTuple

from ksef_client._generated.operations import OPERATIONS
from ksef_client._throttle import GLOBAL_GROUP, GLOBAL_RATE_LIMITS, Throttle, counter_of
from ksef_client.mock.exceptions import Forbidden
from ksef_client.mock.faults import Faults
from ksef_client.mock.state.auth import ACCESS_TOKEN_TTL, ALL_PERMISSIONS, Auth
from ksef_client.mock.state.certificates import Certificates
from ksef_client.mock.state.collective import CollectiveIdentifiers
from ksef_client.mock.state.core import Access, Context, Core, Settings, Status, Transitions, utc_now
from ksef_client.mock.state.invoices import Invoice, Invoices, reread_fields
from ksef_client.mock.state.permissions import Permissions
from ksef_client.mock.state.permissions import upgrade_state as upgrade_permissions
from ksef_client.mock.state.sessions import Session, Sessions
from ksef_client.mock.state.storage import Storage
from ksef_client.mock.state.testdata import TestData
from ksef_client.mock.workers import BatchWorkers
from ksef_client.xades import AllowedIps

__all__ = ["ALL_PERMISSIONS", "Access", "Context", "Invoice", "KSeFBackend", "Session", "Status", "Transitions"]

COMPONENTS = ("storage", "testdata", "permissions", "auth", "invoices", "sessions", "certificates", "collective")


class Refusal(NamedTuple):
    """A request over a rate limit: ``Retry-After`` (the wait rounded up to whole seconds, at
    least 1: a client back before the window has room would be refused again), the limit group as
    ``GET /rate-limits`` names it, and the window (1, 60 or 3600 seconds) and the requests it allows
    (``None``: not known)."""

    retry_after: int
    group: str
    window: float | None = None
    limit: int | None = None

    @classmethod
    def of(cls, wait: float, group: str, binding: tuple[float, int] | None) -> Refusal:
        """The refusal of a request that must wait ``wait`` seconds (``binding``: the window and
        limit that hold it, from ``Throttle.binding``)."""
        window, limit = binding if binding is not None else (None, None)
        return cls(max(1, math.ceil(wait)), group, window, limit)


class KSeFBackend:
    """All state of one emulated KSeF. Thread-safe; ``reset()`` empties it and restores its settings."""

    def __init__(
        self, *, upo_page_size: int = 10_000, metadata_limit: int = 10_000, export_part_size: int = 50_000_000,
        rate_limit_scale: float = 0.0, clock: Callable[[], dt.datetime] = utc_now, profile: str = "TEST",
        session_reads: int = 0, random_faults: tuple[float, int] | None = None, workers: int | None = None,
        invoice_reads: int = 0, export_package_limit: int = 1_000_000_000,
        hwm_lag: dt.timedelta = dt.timedelta(0), late_storage: bool = False,
        storage_resolution: dt.timedelta = dt.timedelta(0), seven_digit_dates: bool = False,
    ) -> None:  # fmt: skip
        """``workers``: processes that check the invoices of a large batch package (``None``: one
        per core; ``1``: none, the session's thread checks them; see ``mock/workers.py``).
        ``hwm_lag``: how far the PermanentStorage HWM trails the present (see ``hwm_lag``);
        ``late_storage``, ``storage_resolution``, ``seven_digit_dates``: see those properties."""
        if profile not in ("TEST", "PROD"):
            raise ValueError(f"profile: 'TEST' or 'PROD', not {profile!r}")
        # What reset() goes back to: sizes, rate-limit scale, status transitions, random faults,
        # the clock.
        self._initial = (
            Settings(
                upo_page_size,
                metadata_limit,
                export_part_size,
                export_package_limit,
                profile,
                _lag(hwm_lag),
                _flag(late_storage, "late_storage"),
                _resolution(storage_resolution),
                _flag(seven_digit_dates, "seven_digit_dates"),
            ),
            rate_limit_scale,
        )
        self._initial_clock = clock
        self._initial_transitions = Transitions(session_reads=session_reads, invoice_reads=invoice_reads)
        self._initial_faults = random_faults
        self.core = Core(clock, replace(self._initial[0]))
        self.core.transitions = replace(self._initial_transitions)
        # KSeF's per-group limits times this scale; 0 (the default in tests) switches them off.
        self.rate_limits = Throttle(scale=rate_limit_scale)
        self.faults = Faults()
        if random_faults is not None:
            self.faults.set_random(random_faults[0], seed=random_faults[1])
        # Kept across reset(): the worker processes are not state.
        self.batch_workers = BatchWorkers(workers)
        self._build()

    def _build(self) -> None:
        core = self.core
        self.storage = Storage(core)
        self.testdata = TestData(core)
        self.permissions = Permissions(core, self.testdata)
        self.certificates = Certificates(core, self.testdata)
        self.auth = Auth(core, self.permissions, self.testdata, self.certificates)
        self.invoices = Invoices(core, self.storage, self.faults)
        self.sessions = Sessions(core, self.storage, self.invoices, self.permissions, self.testdata, self.batch_workers)
        self.collective = CollectiveIdentifiers(core, self.invoices, self.testdata)

    def reset(self) -> None:
        """Forget every session, invoice, token and grant; settings, transitions, faults, rate
        limits and the clock go back to what the backend was created with."""
        settings, scale = self._initial
        self.sessions.wait_processed()  # a worker must not write into the new state (before the lock it takes)
        with self.core.lock:
            # A clock a test installed (``backend.clock = ...`` to move time) must not follow the
            # next test, which expects the emulator as created ("reset before each test").
            self.core.clock = self._initial_clock
            self.core.settings = replace(settings)
            self.core.transitions = replace(self._initial_transitions)
            self.rate_limits = Throttle(scale=scale)
            self.faults.clear()
            if self._initial_faults is not None:
                self.faults.set_random(self._initial_faults[0], seed=self._initial_faults[1])
            self._build()

    def close(self) -> None:
        """Stop the batch worker processes once every closed batch is processed (the server calls
        it when it stops; the backend stays usable and starts them again when needed)."""
        self.sessions.wait_processed()
        self.batch_workers.close()

    # --- what persistence saves ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every component's state, the transitions and the signing secret (what survives a restart)."""
        with self.core.lock:
            state: dict[str, Any] = {name: getattr(self, name).state for name in COMPONENTS}
            state["transitions"] = self.core.transitions
            state["secret"] = self.core.secret
        return state

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Put a ``snapshot()`` back."""
        with self.core.lock:
            for name in COMPONENTS:
                if name in snapshot:
                    getattr(self, name).state = _with_new_fields(snapshot[name])
            self.core.transitions = snapshot.get("transitions", Transitions())
            self.core.secret = snapshot.get("secret", self.core.secret)
            upgrade_permissions(self.permissions.state, self.core.clock())
            # What lies inside the components' states, written by an older emulator, too.
            for record in (*self.sessions.state.sessions.values(), *self.invoices.state.exports.values()):
                _with_new_fields(record)
            for invoice in self._invoices():
                _with_new_fields(invoice)
                reread_fields(invoice)

    def _invoices(self) -> Iterable[Invoice]:
        """Every invoice the state holds: sessions' (accepted or not), the repository's, exports'
        (one object where they are the same invoice: a snapshot is pickled in one piece)."""
        yield from (invoice for session in self.sessions.state.sessions.values() for invoice in session.invoices)
        yield from self.invoices.state.accepted
        yield from (invoice for export in self.invoices.state.exports.values() for invoice in export.invoices)

    # --- shared services and settings ----------------------------------------------------------

    @property
    def clock(self) -> Callable[[], dt.datetime]:
        """The emulator's time (tests replace it to move time)."""
        return self.core.clock

    @clock.setter
    def clock(self, value: Callable[[], dt.datetime]) -> None:
        self.core.clock = value

    @property
    def lock(self) -> Any:
        """The lock every component takes (re-entrant)."""
        return self.core.lock

    @property
    def transitions(self) -> Transitions:
        """How fast statuses advance (after N status reads)."""
        return self.core.transitions

    @transitions.setter
    def transitions(self, value: Transitions) -> None:
        self.core.transitions = value

    @property
    def profile(self) -> str:
        """``"TEST"`` (default) or ``"PROD"``: production also checks the parties' NIP checksums."""
        return self.core.settings.profile

    @profile.setter
    def profile(self, value: str) -> None:
        self.core.settings.profile = value

    @property
    def upo_page_size(self) -> int:
        """Invoices per session UPO page (KSeF: 10,000)."""
        return self.core.settings.upo_page_size

    @upo_page_size.setter
    def upo_page_size(self, value: int) -> None:
        self.core.settings.upo_page_size = value

    @property
    def metadata_limit(self) -> int:
        """Records one metadata query or export returns before ``isTruncated`` (KSeF: 10,000)."""
        return self.core.settings.metadata_limit

    @metadata_limit.setter
    def metadata_limit(self, value: int) -> None:
        self.core.settings.metadata_limit = value

    @property
    def export_package_limit(self) -> int:
        """Compressed bytes of invoices one export package holds before ``isTruncated`` (KSeF: 1 GB)."""
        return self.core.settings.export_package_limit

    @export_package_limit.setter
    def export_package_limit(self, value: int) -> None:
        self.core.settings.export_package_limit = value

    @property
    def hwm_lag(self) -> dt.timedelta:
        """How far the ``PermanentStorage`` high-water mark trails the emulator's present (default
        none: it stores each invoice as it numbers it). KSeF's trails it ("W przedziale (HWM, Teraz]
        [...] mogą się jeszcze pojawić nowe faktury", pobieranie-faktur/hwm.md): set it to test a
        client against that, e.g. a walk restricted to the HWM (``restrictToPermanentStorageHwmDate``)
        that must not ask for a range starting past it (21183, export status 420)."""
        return self.core.settings.hwm_lag

    @hwm_lag.setter
    def hwm_lag(self, value: dt.timedelta) -> None:
        self.core.settings.hwm_lag = _lag(value)

    @property
    def late_storage(self) -> bool:
        """Whether invoices arrive late, as KSeF's may: "W przedziale (HWM, Teraz] [...] mogą się
        jeszcze pojawić nowe faktury, tj. z datą PermanentStorage mieszczącą się w zakresie (HWM,
        Teraz]" (pobieranie-faktur/hwm.md). An invoice numbered while it is on is in no metadata
        query or export (nor downloadable: 21165) until an answer to one has given an HWM; from the
        next request on it is stored dated just past that HWM (1 ms after its numbering at the
        earliest), so with ``hwm_lag`` below invoices already visible; after ``storage_delay``
        seconds (``Transitions``) it is stored anyway. Off by default; ``reset()`` puts it back."""
        return self.core.settings.late_storage

    @late_storage.setter
    def late_storage(self, value: bool) -> None:
        self.core.settings.late_storage = _flag(value, "late_storage")

    @property
    def storage_resolution(self) -> dt.timedelta:
        """How fine ``permanentStorageDate`` is: zero (default) gives each invoice its own date;
        a duration puts every date on a multiple of it (from the Unix epoch): the invoices numbered
        within one such period are stored together at its end and share one date, as a client of
        KSeF must expect (a package may end inside such a group: "kolejne wywołanie należy
        rozpocząć od LastPermanentStorageDate", przyrostowe-pobieranie-faktur.md). An invoice is
        found once the emulator's clock reaches its date: a test with a frozen clock moves it."""
        return self.core.settings.storage_resolution

    @storage_resolution.setter
    def storage_resolution(self, value: dt.timedelta) -> None:
        self.core.settings.storage_resolution = _resolution(value)

    @property
    def seven_digit_dates(self) -> bool:
        """Whether the invoices' dates (metadata records, an export's ``_metadata.json``, invoice
        statuses) and the HWM and last dates of the download answers are written as KSeF writes
        them: to 100 ns, seven fractional digits, trailing zeros dropped ("2025-09-18T12:24:01.0154302
        +00:00", the spec). The emulator's clock has microseconds: the seventh digit is made up (1-9)
        and dates are compared to the microsecond. Off by default (Python's ``isoformat``)."""
        return self.core.settings.seven_digit_dates

    @seven_digit_dates.setter
    def seven_digit_dates(self, value: bool) -> None:
        self.core.settings.seven_digit_dates = _flag(value, "seven_digit_dates")

    @property
    def export_part_size(self) -> int:
        """Bytes per export part."""
        return self.core.settings.export_part_size

    @export_part_size.setter
    def export_part_size(self, value: int) -> None:
        self.core.settings.export_part_size = value

    # --- the documented shortcuts --------------------------------------------------------------

    def mint_access_token(
        self, context_nip: str | None = None, *, context: Context | None = None,
        permissions: Iterable[str] = ALL_PERMISSIONS, ttl: dt.timedelta = ACCESS_TOKEN_TTL,
        subject: tuple[str, str] | None = None, allowed_ips: AllowedIps | None = None,
    ) -> str:  # fmt: skip
        """An access token without the auth flow (see ``Auth.mint_access_token``); ``allowed_ips``:
        held to those addresses, as a login's ``allowed_ips=`` holds its tokens."""
        return self.auth.mint_access_token(
            context_nip, context=context, permissions=permissions, ttl=ttl, subject=subject, allowed_ips=allowed_ips
        )

    def authenticate(self, authorization: str | None) -> Access:
        """Verify a ``Bearer`` access token (``Unauthorized`` otherwise)."""
        return self.auth.authenticate(authorization)

    def check_rate(self, operation: str, address: str, context: Context | None = None) -> Refusal | None:
        """Why a request of ``operation`` is refused (``Refusal``: the seconds to wait, the
        ``Retry-After``, rounded up, and the group, limit and window the caller is over), else
        ``None`` (the request is counted).

        Counted as KSeF counts (``limity/limity-api.md``): per pair of context and IP address (per
        address alone without a context: the anonymous operations), per limit group of the
        operation (each operation of ``other`` on its own counter: ``counter_of``), and per IP
        address over every operation, whatever its context (``global``: "Limity globalne dla
        wszystkich operacji API (per adres IP)", ``EffectiveApiRateLimits``).
        """
        spec = OPERATIONS[operation]
        group = spec.rate_limit_group or operation
        counter = counter_of(operation, spec)
        caller = f"{address}|{context.type}:{context.value}" if context is not None else address
        now = self.core.clock().timestamp()
        with self.core.lock:
            key = f"{address}|{GLOBAL_GROUP}"
            wait = self.rate_limits.delay(key, GLOBAL_RATE_LIMITS, now)
            if wait > 0:
                return Refusal.of(wait, GLOBAL_GROUP, self.rate_limits.binding(key, GLOBAL_RATE_LIMITS, now))
            # A context's own limits (/testdata/rate-limits) are enforced as set, not scaled
            # by --rate-limits (which still switches every limit off at 0).
            override = self.testdata.rate_limits_of(context).get(group)
            limits = override or spec.rate_limits
            key, exact = f"{caller}|{counter}", override is not None
            wait = self.rate_limits.delay(key, limits, now, exact=exact)
            if wait <= 0:
                return None
            return Refusal.of(wait, group, self.rate_limits.binding(key, limits, now, exact=exact))

    @staticmethod
    def require_any(access: Access, permissions: Iterable[str]) -> None:
        """403 unless the token has one of ``permissions`` (none listed: anything goes)."""
        wanted = set(permissions)
        if wanted and not wanted & access.permissions:
            raise Forbidden(
                f"Wymagane jedno z uprawnień: {', '.join(sorted(wanted))}.",
                security={"requiredAnyOfPermissions": sorted(wanted), "presentPermissions": sorted(access.permissions)},
            )


def _with_new_fields(state: Any) -> Any:
    """A component state unpickled from an older ``--state`` file, given the defaults of the fields
    added since (unpickling restores only the attributes the file has)."""
    missing = [spec for spec in fields(state) if spec.name not in vars(state)] if is_dataclass(state) else []
    for spec in missing:
        if spec.default_factory is not MISSING:
            setattr(state, spec.name, spec.default_factory())
        elif spec.default is not MISSING:
            setattr(state, spec.name, spec.default)
    return state


def _flag(value: bool, name: str) -> bool:
    """A setting's ``bool`` checked (``TypeError`` otherwise)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: True or False, not {value!r}")
    return value


def _resolution(value: dt.timedelta) -> dt.timedelta:
    """``storage_resolution`` checked: a ``timedelta`` of zero (none) or more."""
    if not isinstance(value, dt.timedelta) or value < dt.timedelta(0):
        raise ValueError(f"storage_resolution: a timedelta of zero or more, not {value!r}")
    return value


def _lag(value: dt.timedelta) -> dt.timedelta:
    """``hwm_lag`` checked: a ``timedelta`` of zero or more (an HWM ahead of the present would
    promise invoices complete that may still be stored)."""
    if not isinstance(value, dt.timedelta) or value < dt.timedelta(0):
        raise ValueError(f"hwm_lag: a timedelta of zero or more, not {value!r}")
    return value
