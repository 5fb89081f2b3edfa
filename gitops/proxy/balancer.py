"""Pick backends for new connections: round-robin over a once-shuffled endpoint list (pure)."""

from __future__ import annotations

import random
from collections.abc import Sequence

Endpoint = tuple[str, int]  # (ip, port)


class Balancer:
    """Round-robin with fall-through.

    The list is shuffled once per distinct endpoint set, so several agents (or restarts) do
    not all hammer the same first endpoint, while successive connections still rotate evenly.
    """

    def __init__(self, endpoints: Sequence[Endpoint] = (), rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._endpoints: tuple[Endpoint, ...] = ()
        self._next = 0
        self.update(endpoints)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._endpoints

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

    def candidates(self, client_ip: str | None = None) -> list[Endpoint]:
        """Endpoints to try, in order, for one new connection: the round-robin pick first,
        then the others, so a failed dial falls through without skewing the rotation.

        client_ip is the seam for sessionAffinity=ClientIP (pin a client to an endpoint
        while it stays in the set); it is accepted but not used yet.
        """
        eps = self._endpoints
        if not eps:
            return []
        start = self._next
        self._next = (start + 1) % len(eps)
        return list(eps[start:] + eps[:start])
