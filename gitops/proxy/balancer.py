"""Pick backends for new connections: round-robin over a once-shuffled endpoint list, with
optional sessionAffinity=ClientIP (pure; the clock is injected)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

Endpoint = tuple[str, int]  # (ip, port)

_SWEEP_EVERY = 60.0  # seconds between sweeps of expired affinity entries (bounds the table)


class Balancer:
    """Round-robin with fall-through, optionally sticky per client IP.

    The list is shuffled once per distinct endpoint set, so several agents (or restarts) do
    not all hammer the same first endpoint, while successive connections still rotate evenly.

    With affinity_timeout set (seconds; Service sessionAffinity=ClientIP), a client IP goes
    to the endpoint it last used while that endpoint stays in the set and less than
    affinity_timeout has passed since the client's last connection; otherwise it takes the
    next round-robin pick and is pinned to that.
    """

    def __init__(self, endpoints: Sequence[Endpoint] = (), rng: random.Random | None = None,
                 affinity_timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rng = rng or random.Random()
        self._clock = clock
        self._endpoints: tuple[Endpoint, ...] = ()
        self._next = 0
        self._affinity_timeout: float | None = None
        self._pins: dict[str, list] = {}  # client ip -> [endpoint, last used]
        self._swept = clock()
        self.update(endpoints)
        self.affinity_timeout = affinity_timeout

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._endpoints

    @property
    def affinity_timeout(self) -> float | None:
        return self._affinity_timeout

    @affinity_timeout.setter
    def affinity_timeout(self, timeout: float | None) -> None:
        """None turns affinity off and forgets every pin; a new timeout applies to the
        existing pins from their last use."""
        if timeout is not None and timeout <= 0:
            raise ValueError(f"affinity timeout must be positive, not {timeout!r}")
        self._affinity_timeout = None if timeout is None else float(timeout)
        if timeout is None:
            self._pins.clear()

    @property
    def pinned(self) -> int:
        """Client IPs currently remembered (expired ones linger until the next sweep)."""
        return len(self._pins)

    def update(self, endpoints: Sequence[Endpoint]) -> None:
        """Replace the endpoint set. An unchanged set (in any order) is a no-op, so periodic
        level-triggered resyncs do not reset the rotation."""
        wanted = sorted({(str(ip), int(port)) for ip, port in endpoints})
        if set(wanted) == set(self._endpoints):
            return
        # Sort first so the order depends only on the set and the rng, not on caller order.
        self._rng.shuffle(wanted)
        self._endpoints = tuple(wanted)
        # Keep the cursor (modulo) rather than resetting it: a reset would favour index 0
        # whenever endpoints churn faster than connections arrive.
        self._next = self._next % len(wanted) if wanted else 0
        if self._pins:
            # A pin to an endpoint that left is broken for good, even if it comes back.
            alive = set(wanted)
            self._pins = {ip: pin for ip, pin in self._pins.items() if pin[0] in alive}

    def candidates(self, client_ip: str | None = None) -> list[Endpoint]:
        """Endpoints to try, in order, for one new connection: the pinned endpoint (with
        affinity) or the round-robin pick first, then the others in ring order, so a failed
        dial falls through without skewing the rotation. A sticky pick does not advance
        the rotation."""
        eps = self._endpoints
        if not eps:
            return []
        timeout = self._affinity_timeout
        if timeout is not None and client_ip is not None:
            now = self._clock()
            if now - self._swept >= min(timeout, _SWEEP_EVERY):
                self._sweep(now, timeout)
            pin = self._pins.get(client_ip)
            if pin is not None and now - pin[1] < timeout:
                pin[1] = now
                start = eps.index(pin[0])  # update() keeps only pins to current endpoints
                return list(eps[start:] + eps[:start])
        start = self._next
        self._next = (start + 1) % len(eps)
        if timeout is not None and client_ip is not None:
            self._pins[client_ip] = [eps[start], now]
        return list(eps[start:] + eps[:start])

    def stick(self, client_ip: str | None, endpoint: Endpoint) -> None:
        """Record that client_ip was actually served by endpoint (after candidates()[0]
        failed and a later candidate answered), so affinity follows the working endpoint."""
        if self._affinity_timeout is None or client_ip is None or endpoint not in self._endpoints:
            return
        self._pins[client_ip] = [endpoint, self._clock()]

    def _sweep(self, now: float, timeout: float) -> None:
        self._swept = now
        self._pins = {ip: pin for ip, pin in self._pins.items() if now - pin[1] < timeout}
