"""Leader election with coordination.k8s.io/v1 Leases in the store, as client-go's
leaderelection does it: several servers share one store (etcd) and serve the API, while
exactly one runs each of sync, the controllers and the scheduler.

A candidate reads the Lease; it takes it when nobody holds it or when the holder's record
has not changed for leaseDurationSeconds *as this candidate observed it* (its own clock
only: servers' clocks need not agree). The holder renews every retry period; the write
is optimistic (the Lease's resourceVersion), so of two candidates racing only one wins.
A holder that cannot renew within the renew deadline stops leading (Elected in
gitops.runnable stops the loops) before another may take over at the lease's end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gitops.errors import GitopsError
from gitops.model import ObjectKey
from gitops.store.base import Conflict, NotFound

log = structlog.get_logger(__name__)

NAMESPACE = "kube-system"


@dataclass(frozen=True)
class LeaseTimings:
    """Kubernetes' defaults (kube-controller-manager, kube-scheduler)."""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def check(self) -> LeaseTimings:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise GitopsError("leader election timings must satisfy lease duration > renew "
                             f"deadline > retry period > 0 (got {self.lease_duration}, "
                             f"{self.renew_deadline}, {self.retry_period})")
        return self


def micro_time(ts: float) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(name: str, holder: str, timings: LeaseTimings, now: float,
                 acquired: float, transitions: int) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"holderIdentity": holder,
                     "leaseDurationSeconds": max(1, round(timings.lease_duration)),
                     "acquireTime": micro_time(acquired), "renewTime": micro_time(now),
                     "leaseTransitions": transitions}}


class LeaderElector:
    def __init__(self, store, name: str, identity: str, timings: LeaseTimings = LeaseTimings(),
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.name = name
        self.identity = identity
        self.timings = timings.check()
        self.key = ObjectKey("Lease", NAMESPACE, name)
        self._clock = clock
        self._monotonic = monotonic
        self._observed: tuple | None = None     # the holder's record as last seen
        self._observed_at = 0.0                 # when it last changed (monotonic)

    def try_acquire_or_renew(self) -> bool:
        """True when this candidate holds the Lease after the call."""
        try:
            return self._try()
        except (Conflict, NotFound):
            return False            # another candidate wrote first
        except GitopsError as exc:  # the store cannot be reached: not renewed
            log.info("leader_election_store_error", lease=self.name, error=str(exc))
            return False

    def _try(self) -> bool:
        now, mono = self._clock(), self._monotonic()
        lease = self.store.get(self.key)
        if lease is None:
            with self.store.unobserved():
                self.store.create(lease_object(self.name, self.identity, self.timings, now,
                                               now, 0))
            self._seen(("created",), mono)
            log.info("leader_elected", lease=self.name, identity=self.identity)
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._seen(record, mono)
        duration = float(spec.get("leaseDurationSeconds") or self.timings.lease_duration)
        if holder and holder != self.identity and mono < self._observed_at + duration:
            return False
        mine = holder == self.identity
        acquired = spec.get("acquireTime") if mine else micro_time(now)
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine or not holder else 1)
        body = lease_object(self.name, self.identity, self.timings, now, now, transitions)
        body["spec"]["acquireTime"] = acquired
        body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
        with self.store.unobserved():       # a lagging watch must not eat the deadline
            self.store.update(body)
        if not mine:
            log.info("leader_elected", lease=self.name, identity=self.identity,
                     previous=holder, transitions=transitions)
        return True

    def _seen(self, record: tuple, mono: float) -> None:
        self._observed, self._observed_at = record, mono

    def release(self) -> None:
        """Give the Lease up at once (a clean stop): another candidate takes it at its next
        try instead of waiting for the lease to run out."""
        try:
            lease = self.store.get(self.key)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != \
                    self.identity:
                return
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
            self.store.update({**lease, "spec": spec})
            log.info("leader_released", lease=self.name, identity=self.identity)
        except GitopsError as exc:
            log.info("leader_release_failed", lease=self.name, error=str(exc))
