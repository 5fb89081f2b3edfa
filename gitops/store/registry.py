"""The one write path into the store: the Kubernetes API, git's sync, the controllers and
the node agent all write through a Registry over a backend (gitops.store.base), so none of
them has its own idea of Kubernetes' rules. It implements the Store protocol itself
(reads pass through untouched), so whatever takes a Store gets it from the composition
root. It owns:

- identity: a created object gets its namespace, uid, creationTimestamp and generation 1;
  an update keeps uid and creationTimestamp whatever the writer sent;
- resourceVersion and generation: a stale resourceVersion is a Conflict; generation
  moves when anything but metadata and status changes; a writer that leaves status out
  keeps it; a write that changes nothing is not stored (it would wake every loop);
- deletion: propagation (Background, Foreground, Orphan) and the finalizers the garbage
  collector owns, a bound pod only marked for its node, and a deleting object whose last
  finalizer a writer removes going at once;
- admission, in Kubernetes' order on every create and update: defaults, mutating
  admission, the namespace (it must exist, and not be terminating, for a create), a
  Service's ClusterIP and node ports (allocated, or checked when given), then validating
  admission (immutable fields). The rules are pure (gitops.admission), the Kubernetes
  ones by default; `admit` runs them without writing (dry runs, git's pre-check);
- managedFields, recorded by the writer's field manager against the stored object (the
  Kubernetes API's writes name one);
- the executor of controllers' actions, which records an action's Event once it
  succeeded.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from gitops import admission as rules
from gitops.admission import allocation
from gitops.admission.errors import NamespaceNotFound, NamespaceTerminating, Refused
from gitops.errors import PermanentError
from gitops.model import ObjectKey, key_of
from gitops.model.actions import Action, Create, Delete, Emit, SetStatus, Update
from gitops.model.deletion import (
    BACKGROUND,
    FOREGROUND,
    FOREGROUND_FINALIZER,
    ORPHAN,
    ORPHAN_FINALIZER,
    is_finalized,
    propagation_of,
)
from gitops.model import custom
from gitops.model.addresses import SERVICE_CIDR
from gitops.model.meta import is_deleting
from gitops.model.times import now_iso
from gitops.model.volumepaths import is_safe_uid
from gitops.store.base import Conflict, NotFound, Store
from gitops.store.changes import ChangeLog
from gitops.store.events import EventRecorder

log = structlog.get_logger(component="controllers")     # the executor works for them

Admit = Callable[[dict, dict | None], None]     # (object to store, stored one); raises
Default = Callable[[dict], None]                # fills what the writer left out, in place
# Namespaces every cluster has: objects may be created in them before their object is.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
RecordFields = Callable[[dict | None, dict], list[dict]]   # (stored, new) -> managedFields

# Parts of an object that are not its spec: changing only these leaves generation alone.
_NON_SPEC = ("metadata", "status", "apiVersion", "kind")
# Foreground deletion through the API follows dependents this deep at most.
_MAX_DEPTH = 10


__all__ = ["DeleteOptions", "Forbidden", "PreconditionFailed", "Refused", "Registry",
           "execute"]


class PreconditionFailed(Conflict):
    """A delete's uid or resourceVersion precondition does not hold."""


class Forbidden(PermanentError):
    """No writer may do this (delete the default namespace)."""


@dataclass(frozen=True)
class DeleteOptions:
    """A Kubernetes client's DeleteOptions."""
    propagation: str = BACKGROUND
    uid: str = ""                       # preconditions
    resource_version: str = ""
    grace_period: int | None = None     # 0 on a pod: gone now, its node removes orphans
    dry_run: bool = False


class Registry:
    def __init__(self, backend: Store, admission: Iterable[Admit] = rules.VALIDATING,
                 defaults: Iterable[Default] = rules.DEFAULTS,
                 mutating: Iterable[Admit] = rules.MUTATING,
                 service_cidr: str = SERVICE_CIDR) -> None:
        self.backend = backend
        self.admission = list(admission)
        self.defaults = list(defaults)
        self.mutating = list(mutating)
        self.service_cidr = service_cidr        # where ClusterIPs are allocated
        # Reads pass through, bound once: they are every loop's hot path.
        self.get = backend.get
        self.get_by_uid = backend.get_by_uid
        self.list = backend.list
        self.all_objects = backend.all_objects
        self.snapshot = backend.snapshot
        self.page = backend.page
        self.prefetch = getattr(backend, "prefetch", lambda keys: None)
        self.resource_version = backend.resource_version
        self.watch = backend.watch
        self.unobserved = backend.unobserved
        # Inside a transaction opened here, the Services the address allocators look at
        # are listed once and then kept current by this registry's own writes (nobody else
        # writes in between: a transaction holds the store), so writing N Services in one
        # transaction costs O(N), not O(N^2) reads of every Service.
        self._in_txn = threading.local()
        self.inventory = backend.inventory
        self.set_inventory = backend.set_inventory
        self.applied = backend.applied
        self.set_applied = backend.set_applied
        self.get_state = backend.get_state
        self.set_state = backend.set_state
        self.record_sync = backend.record_sync
        self.history = backend.history
        self.close = backend.close
        custom.register(backend.list(custom.CRD))     # the kinds this store's CRDs serve

    @property
    def changes(self) -> ChangeLog:
        return self.backend.changes

    @changes.setter
    def changes(self, log_: ChangeLog) -> None:
        self.backend.changes = log_

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The backend's transaction (nested calls join); see _services."""
        local = self._in_txn
        depth = getattr(local, "depth", 0)
        local.depth = depth + 1
        try:
            with self.backend.transaction():
                yield
        finally:
            local.depth = depth
            if not depth:
                local.services = None

    def _services(self) -> Iterable[dict]:
        """Every Service, as the allocators need them."""
        local = self._in_txn
        if not getattr(local, "depth", 0):
            return self.backend.list("Service")
        if getattr(local, "services", None) is None:
            local.services = {key_of(s): _addresses(s) for s in self.backend.list("Service")}
        return local.services.values()

    def _wrote(self, key: ObjectKey, stored: dict | None) -> dict | None:
        """Keep the transaction's Services current with this write (None: deleted)."""
        services = getattr(self._in_txn, "services", None)
        if key.kind == "Service" and services is not None:
            if stored is None:
                services.pop(key, None)
            else:
                services[key] = _addresses(stored)
        return stored

    def _delete(self, key: ObjectKey) -> dict | None:
        old = self.backend.delete(key)
        self._wrote(key, None)
        return old

    # -- create and update --------------------------------------------------------------
    def admit(self, obj: dict, old: dict | None, namespaces: Collection[str] = ()) -> None:
        """Defaults, mutating admission, namespace and allocations, validating admission:
        obj is changed in place as it would be stored. A dry run calls this itself to be
        judged the same. namespaces: ones about to be created (git's pre-check)."""
        for fill in self.defaults:
            fill(obj)
        for mutate in self.mutating:
            mutate(obj, old)
        if old is None:
            self._check_namespace(key_of(obj), namespaces)
        if obj.get("kind") == "Service":
            key = key_of(obj)
            others = [s for s in self._services() if key_of(s) != key]
            allocation.allocate(obj, old, others, self.service_cidr)
        for check in self.admission:
            check(obj, old)

    def _check_namespace(self, key: ObjectKey, pending: Collection[str]) -> None:
        """NamespaceLifecycle: a create needs its namespace, and not one being deleted."""
        ns = key.namespace
        if not ns or ns in SYSTEM_NAMESPACES or ns in pending:
            return
        found = self.backend.get(ObjectKey("Namespace", "", ns))
        if found is None:
            raise NamespaceNotFound(ns)
        if is_deleting(found):
            raise NamespaceTerminating(ns, key.kind, key.name)

    def create(self, obj: dict, record_fields: RecordFields | None = None) -> dict:
        key = key_of(obj)
        obj = _copy(obj)
        meta = obj.setdefault("metadata", {})
        if key.namespace:
            meta["namespace"] = key.namespace
        # Writers from outside (git, the API) never choose a uid; a trusted caller's is
        # kept only when the node may use it as a directory name. Set before admission:
        # a Job's generated selector names it.
        given = meta.get("uid")
        meta["uid"] = given if isinstance(given, str) and is_safe_uid(given) \
            else str(uuid.uuid4())
        with self.backend.transaction():
            self.admit(obj, None)
            if record_fields is not None:
                meta["managedFields"] = record_fields(None, obj)
            meta["creationTimestamp"] = meta.get("creationTimestamp") or now_iso()
            meta["generation"] = 1
            created = self._wrote(key, self.backend.create(obj))
            if key.kind == custom.CRD:
                custom.register(self.backend.list(custom.CRD))
            return created

    def update(self, obj: dict, record_fields: RecordFields | None = None) -> dict:
        """Replace an object. A resourceVersion in obj must match (optimistic concurrency).
        What the server allocated or generated and obj leaves out is kept."""
        key = key_of(obj)
        with self.backend.transaction():
            old = self.backend.get(key)
            if old is None:
                raise NotFound(f"{key} not found")
            old_meta = old["metadata"]
            given = (obj.get("metadata") or {}).get("resourceVersion")
            if given not in (None, old_meta["resourceVersion"]):
                raise Conflict(f"{key} was modified (resourceVersion "
                               f"{given} != {old_meta['resourceVersion']})")
            obj = _copy(obj)
            meta = obj.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp"):
                meta[field] = old_meta[field]
            if key.namespace:
                meta["namespace"] = key.namespace
            self.admit(obj, old)
            if record_fields is not None:
                meta["managedFields"] = record_fields(old, obj)
            if is_finalized(obj):
                self.request_delete(key)
                return obj
            spec_changed = _spec(old) != _spec(obj)
            meta["generation"] = old_meta.get("generation", 1) + (1 if spec_changed else 0)
            if "status" not in obj and "status" in old:
                obj["status"] = old["status"]
            meta["resourceVersion"] = old_meta["resourceVersion"]
            if obj == old:
                return old   # no-op writes don't wake every loop
            updated = self._wrote(key, self.backend.update(obj))
            if key.kind == custom.CRD:
                custom.register(self.backend.list(custom.CRD))
            return updated

    def update_status(self, key: ObjectKey, status: dict) -> dict:
        with self.backend.transaction():
            old = self.backend.get(key)
            if old is None:
                raise NotFound(f"{key} not found")
            if old.get("status") == status:
                return old
            if key.kind == "Pod" and "qosClass" in (old.get("status") or {}) and \
                    "qosClass" not in status:
                status = {**status, "qosClass": old["status"]["qosClass"]}   # set once
            return self._wrote(key, self.backend.update({**old, "status": status}))

    # -- deletion -----------------------------------------------------------------------
    def delete(self, key: ObjectKey) -> dict | None:
        """The object goes now, finalizers or not: a pod's node finishing its deletion,
        an expired Event. Everyone else asks with request_delete."""
        return self._delete(key)

    def request_delete(self, key: ObjectKey, propagation: str = "") -> None:
        """Delete as the API server does. Background: the object goes now, the garbage
        collector takes its dependents later. Orphan / Foreground: the object is only
        marked (deletionTimestamp and the `orphan` / `foregroundDeletion` finalizer); the
        garbage collector frees or deletes the dependents first, then removes it. A bound
        pod is only marked; its node finishes the job."""
        with self.backend.transaction():
            obj = self.backend.get(key)
            if obj is None:
                return
            if key.kind == custom.CRD:          # its custom resources go with it
                self._delete_custom_resources(obj)
            policy = propagation_of(obj, propagation)
            meta = obj["metadata"]
            if policy in (ORPHAN, FOREGROUND) and key.kind != "Pod":
                finalizer = ORPHAN_FINALIZER if policy == ORPHAN else FOREGROUND_FINALIZER
                if finalizer not in (meta.get("finalizers") or []):
                    meta["finalizers"] = [*(meta.get("finalizers") or []), finalizer]
                    meta.setdefault("deletionTimestamp", now_iso())
                    self.update(obj)
                return
            if key.kind == "Pod" and obj.get("spec", {}).get("nodeName"):
                if not is_deleting(obj):
                    meta["deletionTimestamp"] = now_iso()
                    self.update(obj)
                return
            self._delete(key)
            if key.kind == custom.CRD:
                custom.register(self.backend.list(custom.CRD))

    def delete_with_options(self, key: ObjectKey, options: DeleteOptions) -> dict:
        """A Kubernetes client's DELETE: preconditions, then the namespace's contents, the
        dependents freed (Orphan) or deleted (Foreground) at once, and the object marked
        while finalizers hold it. Returns the object as it is after (or was, if gone).
        Raises NotFound, PreconditionFailed, Forbidden."""
        with self.backend.transaction():
            obj = self.backend.get(key)
            if obj is None:
                raise NotFound(f"{key} not found")
            meta = obj["metadata"]
            if options.uid and options.uid != meta.get("uid"):
                raise PreconditionFailed(
                    f"Precondition failed: UID in precondition: {options.uid}, UID in object "
                    f"meta: {meta['uid']}")
            if options.resource_version and \
                    options.resource_version != meta.get("resourceVersion"):
                raise PreconditionFailed(
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{options.resource_version}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}")
            if key.kind == "Namespace" and key.name in IMMORTAL_NAMESPACES:
                raise Forbidden(f'namespaces "{key.name}" is forbidden: this namespace may '
                                "not be deleted")
            if options.dry_run:
                return obj
            if key.kind == "Namespace":          # its contents go with it
                for inner in list(self.backend.all_objects()):
                    if inner["metadata"].get("namespace") == key.name:
                        self.request_delete(key_of(inner))
            if options.propagation == ORPHAN:
                self._orphan_dependents(meta["uid"])
            elif options.propagation == FOREGROUND:
                self._delete_dependents(meta["uid"])
            if meta.get("finalizers"):
                if not meta.get("deletionTimestamp"):
                    meta["deletionTimestamp"] = now_iso()
                    obj = self.update(obj)
                return obj
            if key.kind == "Pod" and options.grace_period == 0:
                self._delete(key)            # --force --grace-period=0
            else:
                self.request_delete(key)
            return self.backend.get(key) or obj

    def _delete_custom_resources(self, crd: dict) -> None:
        kind = custom.kind_of(crd)
        if kind is not None and not custom.is_built_in(kind.kind):
            for obj in self.backend.list(kind.kind):
                self.request_delete(key_of(obj))

    def _dependents(self, uid: str) -> list[dict]:
        return [o for o in self.backend.all_objects()
                if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences")
                       or [])]

    def _orphan_dependents(self, uid: str) -> None:
        for dep in self._dependents(uid):
            refs = [ref for ref in dep["metadata"]["ownerReferences"] if ref.get("uid") != uid]
            if refs:
                dep["metadata"]["ownerReferences"] = refs
            else:
                del dep["metadata"]["ownerReferences"]
            dep["metadata"].pop("resourceVersion", None)
            self.update(dep)

    def _delete_dependents(self, uid: str, depth: int = 0) -> None:
        """Foreground cascading, done at once: dependents (theirs first), then the owner."""
        if depth > _MAX_DEPTH:
            return
        for dep in self._dependents(uid):
            self._delete_dependents(dep["metadata"]["uid"], depth + 1)
            self.request_delete(key_of(dep))


# -- the executor of controllers' actions ------------------------------------------------
def execute(registry: Registry, actions: list[Action], controller: str,
            recorder: EventRecorder | None = None) -> None:
    """Apply actions one by one; a conflict just means the next pass will redo the work.
    An action's Event is recorded only once the action succeeded, as Kubernetes
    controllers emit SuccessfulCreate after the create call returned."""
    for action in actions:
        try:
            match action:
                case Create(obj):
                    registry.create(obj)
                    log.info("object_created", controller=controller, object=str(key_of(obj)))
                case Update(obj):
                    registry.update(obj)
                case SetStatus(key, status):
                    registry.update_status(key, status)
                case Delete(key, _, propagation):
                    registry.request_delete(key, propagation)
                    log.info("object_deleted", controller=controller, object=str(key))
                case Emit():
                    pass
        except (Conflict, NotFound) as exc:
            log.debug("action_conflict", controller=controller, error=str(exc))
            continue
        except Refused as exc:          # one refused write never stops the others
            log.warning("action_refused", controller=controller, error=str(exc),
                        object=str(key_of(action.obj)) if hasattr(action, "obj") else "")
            continue
        if action.event is not None and recorder is not None:
            recorder.record(action.event)


def execute_batched(registry: Registry, actions: list[Action], controller: str,
                    recorder: EventRecorder | None = None, batch: int = 100) -> None:
    """execute, `batch` actions to a transaction: one commit (one etcd Txn, one fsync) per
    batch instead of per action, as the scheduler binds thousands of pods. A batch that
    loses a race to another writer is dropped whole; the next pass redoes its work."""
    for start in range(0, len(actions), batch):
        held = _HeldEvents()
        try:
            with registry.transaction():
                chunk = actions[start:start + batch]
                registry.prefetch([k for a in chunk if (k := _target(a)) is not None])
                execute(registry, chunk, controller, held)  # type: ignore[arg-type]
        except Conflict as exc:
            log.info("action_batch_conflict", controller=controller, error=str(exc))
            continue
        # Events after the commit: the recorder takes its own lock and then the store's, so
        # recording while this transaction holds the store's lock would deadlock with it.
        for spec in held.specs if recorder is not None else ():
            recorder.record(spec)


def _target(action: Action) -> ObjectKey | None:
    """The object an action reads first."""
    match action:
        case Create(obj) | Update(obj):
            return key_of(obj)
        case SetStatus(key, _) | Delete(key, _, _):
            return key
    return None


class _HeldEvents:
    """Events of a batch, kept until its transaction commits."""

    def __init__(self) -> None:
        self.specs: list = []

    def record(self, spec) -> None:
        self.specs.append(spec)


# -- rules ---------------------------------------------------------------------------------
def _addresses(svc: dict) -> dict:
    """What the allocators read of a Service (gitops.admission.allocation), copied: the
    caller may change the object it was given back."""
    spec = svc.get("spec") or {}
    ports = spec.get("ports")
    return {"kind": "Service", "metadata": {k: v for k, v in svc["metadata"].items()
                                            if k in ("namespace", "name")},
            "spec": {"clusterIP": spec.get("clusterIP"),
                     "ports": [{"nodePort": p.get("nodePort")} for p in ports
                               if isinstance(p, dict)] if isinstance(ports, list) else []}}


def _copy(obj: dict) -> dict:
    """A copy of JSON-shaped data the caller can no longer change (faster than deepcopy)."""
    return json.loads(json.dumps(obj))


def _spec(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in _NON_SPEC}

