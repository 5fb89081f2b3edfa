"""Events, shaped like core/v1 Events: what controllers, the scheduler and the node agent did.

Deciding is pure: reconcilers attach an `EventSpec` to the action it describes, and the
functions here build, merge and expire Event objects. `gitops.store.events.EventRecorder`
is the edge that writes them, the way client-go's recorder does:

- an identical event (same object, source, type, reason and message) bumps `count` and
  `lastTimestamp` of the existing Event instead of adding one (EventCorrelator);
- repeats of one event within `coalesce` seconds are counted in memory and written with
  the next bump, so a pod in back-off does not rewrite its Event on every pass;
- Events live one hour after their last occurrence (the API server's --event-ttl) and at
  most `max_events` are kept, oldest first out;
- a message never carries a Secret's value: every value of every Secret in the object's
  namespace is replaced by *** before anything is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gitops.model import KINDS, ObjectKey
from gitops.model.secrets import values_of
from gitops.model.times import parse_rfc3339
from gitops.model.times import rfc3339 as iso

NORMAL, WARNING = "Normal", "Warning"
TTL_SECONDS = 3600.0          # kube-apiserver --event-ttl default
MAX_EVENTS = 1000
MAX_MESSAGE = 1024            # the API server truncates longer messages the same way


@dataclass(frozen=True)
class EventSpec:
    """One occurrence: who saw what about which object."""
    involved: tuple[tuple[str, str], ...]    # involvedObject as sorted (field, value) pairs
    reason: str
    message: str
    type: str = NORMAL
    component: str = ""

    @property
    def involved_object(self) -> dict:
        return dict(self.involved)

    @property
    def namespace(self) -> str:
        """Events of cluster-scoped objects (Nodes) live in "default", as in Kubernetes."""
        return self.involved_object.get("namespace") or "default"


def reference(obj: dict, field_path: str = "") -> tuple[tuple[str, str], ...]:
    """An ObjectReference to obj, as involvedObject."""
    meta = obj.get("metadata") or {}
    kind = obj.get("kind", "")
    info = KINDS.get(kind)
    ref = {"kind": kind, "name": meta.get("name", ""),
           "apiVersion": obj.get("apiVersion") or (info.api_version if info else "v1")}
    if info is None or info.namespaced:
        ref["namespace"] = meta.get("namespace") or "default"
    if meta.get("uid"):
        ref["uid"] = meta["uid"]
    if field_path:
        ref["fieldPath"] = field_path
    return tuple(sorted(ref.items()))


def event_for(obj: dict, reason: str, message: str, type: str = NORMAL, component: str = "",
              field_path: str = "") -> EventSpec:
    return EventSpec(reference(obj, field_path), reason, message, type, component)


# -- pure helpers over Event objects --------------------------------------------------
def _epoch(value: object) -> float:
    return parse_rfc3339(value) or 0.0


def aggregate_key(event: dict) -> tuple:
    """What makes two Events the same occurrence (client-go's getEventKey)."""
    inv = event.get("involvedObject") or {}
    src = event.get("source") or {}
    return (src.get("component", ""), src.get("host", ""), inv.get("kind", ""),
            inv.get("namespace", ""), inv.get("name", ""), inv.get("uid", ""),
            inv.get("apiVersion", ""), inv.get("fieldPath", ""), event.get("type", ""),
            event.get("reason", ""), event.get("message", ""))


def new_event(spec: EventSpec, name: str, now: float, host: str = "") -> dict:
    stamp = iso(now)
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": spec.namespace},
            "involvedObject": spec.involved_object,
            "reason": spec.reason, "message": spec.message[:MAX_MESSAGE], "type": spec.type,
            "source": {"component": spec.component, **({"host": host} if host else {})},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "eventTime": None, "reportingComponent": spec.component,
            "reportingInstance": host}


def bumped(event: dict, now: float, by: int = 1) -> dict:
    out = {**event, "count": int(event.get("count") or 1) + by, "lastTimestamp": iso(now),
           "metadata": dict(event["metadata"])}
    return out


def last_seen(event: dict) -> float:
    return _epoch(event.get("lastTimestamp")) or _epoch(event.get("eventTime")) or \
        _epoch((event.get("metadata") or {}).get("creationTimestamp"))


def expired(events: Iterable[dict], now: float, ttl: float = TTL_SECONDS,
            max_events: int = MAX_EVENTS) -> list[ObjectKey]:
    """Events to delete: older than ttl since last seen, then the oldest beyond max_events."""
    events = sorted(events, key=last_seen)
    gone = [e for e in events if now - last_seen(e) > ttl]
    kept = [e for e in events if now - last_seen(e) <= ttl]
    gone += kept[: max(0, len(kept) - max_events)]
    return [ObjectKey("Event", e["metadata"].get("namespace") or "default",
                      e["metadata"]["name"]) for e in gone]


def for_object(events: Iterable[dict], kind: str, name: str, namespace: str = "",
               uid: str = "") -> list[dict]:
    """The Events about one object, oldest first (by uid when given, else by kind/name)."""
    out = []
    for e in events:
        inv = e.get("involvedObject") or {}
        if uid and inv.get("uid"):
            if inv["uid"] != uid:
                continue
        elif inv.get("kind") != kind or inv.get("name") != name or \
                (namespace and (inv.get("namespace") or "") not in (namespace, "")):
            continue
        out.append(e)
    return sorted(out, key=lambda e: (last_seen(e), e["metadata"]["name"]))


def secret_values(secrets: Iterable[dict]) -> set[str]:
    """Every value of every Secret given, in each form it may be printed."""
    return set().union(*(values_of(s) for s in secrets))
