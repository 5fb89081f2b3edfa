"""Which keys a change asks each controller to reconcile, as client-go's event handlers
map an object to the keys of its owners: a Pod change enqueues its ReplicaSet (and that
one's Deployment), a Service change its Endpoints, a Node change every DaemonSet...

Each mapper takes the informer's cache (read only) and one change (old and new object,
either may be None) and yields keys; what it cannot tell for sure (an orphan that some
controller may adopt) it over-approximates: a needless reconcile writes nothing, a
missed one would wait for the long resync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from gitops.controllers import replicationcontroller
from gitops.controllers.statefulset import ordinal_of
from gitops.model import ObjectKey, key_of
from gitops.model.deletion import FOREGROUND_FINALIZER, ORPHAN_FINALIZER
from gitops.model.meta import controller_of, is_deleting
from gitops.model.podspec import referenced_configs
from gitops.model.selectors import matches, service_matches
from gitops.store.informer import DELETED, Informer

ALL = "*"       # the key of controllers that reconcile a whole kind at once

Mapper = Callable[[Informer, str, "dict | None", "dict | None"], Iterator]
CONFIG_KINDS = ("ConfigMap", "Secret")


def _both(old: dict | None, new: dict | None) -> list[dict]:
    return [o for o in (old, new) if o is not None]


def _kind(old: dict | None, new: dict | None) -> str:
    return (new or old or {}).get("kind", "")


def _ns(obj: dict) -> str:
    return key_of(obj).namespace


def _owner(obj: dict, kind: str) -> ObjectKey | None:
    """The key of obj's controller when it is of `kind`."""
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != kind or not ref.get("name"):
        return None
    return ObjectKey(kind, _ns(obj), ref["name"])


def _selecting(cache: Informer, kind: str, obj: dict) -> Iterator[ObjectKey]:
    """Controllers of kind in obj's namespace that may adopt it (it is an orphan whose
    labels their selector matches)."""
    if controller_of(obj) is not None or is_deleting(obj):
        return
    labels = obj["metadata"].get("labels")
    for owner in cache.list(kind, _ns(obj)):
        if matches((owner.get("spec") or {}).get("selector"), labels):
            yield key_of(owner)


def _controllers(cache: Informer, kind: str, old: dict | None,
                 new: dict | None) -> Iterator[ObjectKey]:
    """Keys of kind that control old or new, or may adopt them."""
    for obj in _both(old, new):
        if (owner := _owner(obj, kind)) is not None:
            yield owner
        yield from _selecting(cache, kind, obj)


def _reading_config(cache: Informer, kind: str, config: dict) -> Iterator[ObjectKey]:
    """Workloads of kind whose pod template reads this ConfigMap or Secret (the config
    hash in their template changes with it)."""
    ref = (config["kind"], config["metadata"].get("name", ""))
    for owner in cache.list(kind, _ns(config)):
        spec = ((owner.get("spec") or {}).get("template") or {}).get("spec") or {}
        if ref in referenced_configs(spec):
            yield key_of(owner)


# -- per controller ---------------------------------------------------------------------
def garbage_collector(cache: Informer, event: str, old: dict | None,
                      new: dict | None) -> Iterator[str]:
    """The collector reads everything at once; it is asked to only when ownership may
    have come loose: an owner with dependents went, an owner is being deleted with a
    finalizer of the collector's, or an object names an owner that is missing or being
    deleted."""
    if event == DELETED and old is not None and \
            cache.has_dependents(old["metadata"].get("uid", "")):
        yield ALL
        return
    if new is not None and is_deleting(new) and {ORPHAN_FINALIZER, FOREGROUND_FINALIZER} & \
            set(new["metadata"].get("finalizers") or []):
        yield ALL
        return
    for obj in _both(old, new):
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner = cache.by_uid(ref.get("uid", "")) if ref.get("uid") else None
            if (owner is None and obj is new) or (owner is not None and is_deleting(owner)):
                yield ALL
                return


def service_allocations(cache: Informer, event: str, old: dict | None,
                        new: dict | None) -> Iterator[str]:
    if _kind(old, new) == "Service":
        yield ALL


def claims(cache: Informer, event: str, old: dict | None,
           new: dict | None) -> Iterator[ObjectKey]:
    if new is not None and new.get("kind") == "PersistentVolumeClaim":
        yield key_of(new)


def deployments(cache: Informer, event: str, old: dict | None,
                new: dict | None) -> Iterator[ObjectKey]:
    kind = _kind(old, new)
    if kind == "Deployment":
        yield key_of(new or old)
    elif kind == "ReplicaSet":
        yield from _controllers(cache, "Deployment", old, new)
    elif kind == "Pod":                  # Recreate waits for the old pods to go
        for obj in _both(old, new):
            rs_key = _owner(obj, "ReplicaSet")
            rs = cache.get(rs_key) if rs_key else None
            if rs is not None and (owner := _owner(rs, "Deployment")) is not None:
                yield owner
    elif kind in CONFIG_KINDS:
        yield from _reading_config(cache, "Deployment", new or old)


def replicasets(cache: Informer, event: str, old: dict | None,
                new: dict | None) -> Iterator[ObjectKey]:
    kind = _kind(old, new)
    if kind == "ReplicaSet":
        yield key_of(new or old)
    elif kind == "Pod":
        yield from _controllers(cache, "ReplicaSet", old, new)


def replicationcontrollers(cache: Informer, event: str, old: dict | None,
                           new: dict | None) -> Iterator[ObjectKey]:
    """As replicasets, with the RC's label-map selector."""
    kind = _kind(old, new)
    if kind == "ReplicationController":
        yield key_of(new or old)
    elif kind == "Pod":
        for obj in _both(old, new):
            if (owner := _owner(obj, "ReplicationController")) is not None:
                yield owner
            elif not is_deleting(obj) and controller_of(obj) is None:
                labels = obj["metadata"].get("labels")
                for rc in cache.list("ReplicationController", _ns(obj)):
                    if matches(replicationcontroller.selector(rc), labels):
                        yield key_of(rc)


def statefulsets(cache: Informer, event: str, old: dict | None,
                 new: dict | None) -> Iterator[ObjectKey]:
    kind = _kind(old, new)
    if kind == "StatefulSet":
        yield key_of(new or old)
    elif kind == "Pod":
        yield from _controllers(cache, "StatefulSet", old, new)
        for obj in _both(old, new):      # a foreign pod holding one of its pod names
            name = obj["metadata"].get("name", "")
            for sts in cache.list("StatefulSet", _ns(obj)):
                if ordinal_of(sts["metadata"]["name"], name) is not None:
                    yield key_of(sts)
    elif kind == "PersistentVolumeClaim":
        yield from (key_of(s) for s in cache.list("StatefulSet", _ns(new or old)))
    elif kind == "ControllerRevision":
        yield from (k for o in _both(old, new) if (k := _owner(o, "StatefulSet")))
    elif kind in CONFIG_KINDS:
        yield from _reading_config(cache, "StatefulSet", new or old)


def daemonsets(cache: Informer, event: str, old: dict | None,
               new: dict | None) -> Iterator[ObjectKey]:
    kind = _kind(old, new)
    if kind == "DaemonSet":
        yield key_of(new or old)
    elif kind == "Pod":
        yield from _controllers(cache, "DaemonSet", old, new)
    elif kind == "Node":
        yield from (key_of(d) for d in cache.list("DaemonSet"))
    elif kind == "ControllerRevision":
        yield from (k for o in _both(old, new) if (k := _owner(o, "DaemonSet")))
    elif kind in CONFIG_KINDS:
        yield from _reading_config(cache, "DaemonSet", new or old)


def cronjobs(cache: Informer, event: str, old: dict | None,
             new: dict | None) -> Iterator[ObjectKey]:
    kind = _kind(old, new)
    if kind == "CronJob":
        yield key_of(new or old)
    elif kind == "Job":
        yield from (k for o in _both(old, new) if (k := _owner(o, "CronJob")))


def jobs(cache: Informer, event: str, old: dict | None,
         new: dict | None) -> Iterator[ObjectKey]:
    kind = _kind(old, new)
    if kind == "Job":
        yield key_of(new or old)
    elif kind == "Pod":
        yield from (k for o in _both(old, new) if (k := _owner(o, "Job")))


def endpoints(cache: Informer, event: str, old: dict | None,
              new: dict | None) -> Iterator[ObjectKey]:
    """Keyed by the Service: its Endpoints follow it and the pods it selects."""
    kind = _kind(old, new)
    if kind in ("Service", "Endpoints"):
        obj = new or old
        yield ObjectKey("Service", _ns(obj), obj["metadata"]["name"])
    elif kind == "Pod":
        labels = [o["metadata"].get("labels") for o in _both(old, new)]
        for svc in cache.list("Service", _ns(new or old)):
            selector = (svc.get("spec") or {}).get("selector")
            if selector and any(service_matches(selector, lab) for lab in labels):
                yield key_of(svc)


def autoscalers(cache: Informer, event: str, old: dict | None,
                new: dict | None) -> Iterator[ObjectKey]:
    """An HPA, and the HPAs that scale a workload that changed (its replicas were set by
    hand, it came or went); usage is read on the HPA's own period."""
    kind = _kind(old, new)
    if kind == "HorizontalPodAutoscaler":
        yield key_of(new or old)
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"):
        name = (new or old)["metadata"].get("name")
        for hpa in cache.list("HorizontalPodAutoscaler", _ns(new or old)):
            ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("kind") == kind and ref.get("name") == name:
                yield key_of(hpa)


def disruption_budgets(cache: Informer, event: str, old: dict | None,
                       new: dict | None) -> Iterator[ObjectKey]:
    """A budget counts the pods it selects against their controllers' scale."""
    kind = _kind(old, new)
    if kind == "PodDisruptionBudget":
        yield key_of(new or old)
    elif kind in ("Pod", "ReplicaSet", "Deployment", "StatefulSet"):
        yield from (key_of(p) for p in cache.list("PodDisruptionBudget", _ns(new or old)))
