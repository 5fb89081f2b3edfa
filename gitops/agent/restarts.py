"""Restart bookkeeping per pod (pure): how often each container restarted, the state of its
previous run, where its back-off curve was last reset, and where its previous run's logs
begin.

Counts and lastState are seeded from the pod's status, so they survive an agent restart;
the back-off base and the log windows are kept in memory only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitops.agent.plan import backoff_restarts
from gitops.model.times import parse_ts


@dataclass
class PodRestarts:
    """One pod's containers, by name."""
    counts: dict[str, int] = field(default_factory=dict)
    last_states: dict[str, dict] = field(default_factory=dict)     # lastState, as in status
    backoff_base: dict[str, int] = field(default_factory=dict)     # count at the last reset
    # When the previous run began: the finish of the run before it (0.0: not known).
    # Docker's StartedAt comes after a fast process's first output, so a run's logs are
    # cut at finish times.
    previous_since: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_status(cls, status: dict) -> PodRestarts:
        statuses = [*(status.get("initContainerStatuses") or []),
                    *(status.get("containerStatuses") or [])]
        return cls(counts={s["name"]: s.get("restartCount", 0) for s in statuses},
                   last_states={s["name"]: s.get("lastState") or {} for s in statuses})

    def backoff_counts(self) -> dict[str, int]:
        """Restarts that count for the back-off: those since it was last reset."""
        return backoff_restarts(self.counts, self.backoff_base)

    def restarted(self, name: str, terminated: dict, backoff_reset: bool = False) -> int:
        """The container `name` is being restarted after the run that ended as
        `terminated` (a terminated state); returns its new restart count."""
        if backoff_reset:
            self.backoff_base[name] = self.counts.get(name, 0)
        before = self.last_states.get(name, {}).get("terminated", {})
        self.previous_since[name] = parse_ts(before.get("finishedAt"), 0.0)
        self.last_states[name] = {"terminated": terminated}
        self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts[name]


class RestartBook:
    """Every pod of the node this agent has seen, by uid."""

    def __init__(self) -> None:
        self._pods: dict[str, PodRestarts] = {}

    def __contains__(self, uid: str) -> bool:
        return uid in self._pods

    def seed(self, pod: dict) -> PodRestarts:
        """The pod's book, started from its status the first time it is seen."""
        uid = pod["metadata"]["uid"]
        if uid not in self._pods:
            self._pods[uid] = PodRestarts.from_status(pod.get("status", {}))
        return self._pods[uid]

    def of(self, uid: str) -> PodRestarts:
        """A pod's book; KeyError when the pod was never seeded."""
        return self._pods[uid]

    def previous_run_since(self, uid: str, name: str, started_at: str) -> float | None:
        """Where the logs of a container's previous run begin (None: at the start): just
        after the run before it finished, or, after an agent restart forgot that, a second
        before the previous run started."""
        pod = self._pods.get(uid)
        known = pod.previous_since.get(name) if pod is not None else None
        if known is not None:
            return known + 0.000001 if known else None
        start = parse_ts(started_at, 0.0)
        return start - 1.0 if start > 1.0 else None

    def forget(self, known: set[str]) -> list[str]:
        """Drop the pods not in known; returns their uids."""
        gone = [uid for uid in self._pods if uid not in known]
        for uid in gone:
            del self._pods[uid]
        return gone
