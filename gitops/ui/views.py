"""What each page shows, read from the store the way `gitops status|get|describe|history`
read it (health with pods, Secrets masked, git's applied copy for the diff)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import quote

from gitops.health import Health, assess, pods_of
from gitops.model import ObjectKey
from gitops.model.secrets import mask_secret, values_of
from gitops.store.base import Store
from gitops.sync.diff import compared_views
from gitops.sync.drift import declaring_object
from gitops.ui.diffview import Row, side_by_side, to_yaml
from gitops.ui.tree import Declared, Node, build_tree, container_health

_WORKLOADS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")
_LOCATED = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+): ")
_WEB_HOSTS = ("github.com", "gitlab.com", "codeberg.org", "bitbucket.org", "gitea.com")


class Snapshot:
    """All objects read once, listed by kind and namespace: the health rules' pod lookups
    (pods_of) on a 500-object tree cost dictionary reads, not store queries."""

    def __init__(self, objects: list[dict]) -> None:
        self.objects = objects
        self._by: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for obj in objects:
            ns = (obj.get("metadata") or {}).get("namespace") or ""
            self._by[(obj.get("kind", ""), ns)].append(obj)

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        if namespace is not None:
            return list(self._by.get((kind, namespace), []))
        return [o for (k, _), objs in self._by.items() if k == kind for o in objs]


def app_tree(store: Store) -> list[Node]:
    snap = Snapshot(list(store.all_objects()))
    inventory = store.inventory()
    declared = {k: Declared(e.file, e.line, e.sync_status) for k, e in inventory.items()}

    return build_tree(snap.objects, declared, lambda obj: health_in(snap, obj))


def health_in(reader: Store | Snapshot, obj: dict) -> Health:
    """As `gitops status` judges it (a workload with its pods); a malformed object
    (written through the API) is Unknown with why, and never blanks the whole page."""
    try:
        return assess(obj, pods_of(reader, obj) if obj.get("kind") in _WORKLOADS else None)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        return Health("Unknown", f"cannot assess: {type(exc).__name__}: {exc}")


# -- commit links -------------------------------------------------------------------------
def web_url(repo: str) -> str:
    """The browsable https address of a repository on a web git host, else ""."""
    m = re.match(r"^(?:https://(?:[^@/]+@)?|git@|ssh://git@)([^/:]+)[/:](.+?)(?:\.git)?/?$",
                 repo or "")
    if not m or not (m.group(1) in _WEB_HOSTS or m.group(1).startswith(("git.", "gitea."))):
        return ""
    return f"https://{m.group(1)}/{m.group(2)}"


def commit_url(repo: str, sha: str) -> str:
    base = web_url(repo)
    return f"{base}/commit/{quote(sha)}" if base and sha else ""


def file_url(repo: str, sha: str, path: str, file: str, line: int) -> str:
    base = web_url(repo)
    if not (base and sha and file):
        return ""
    full = "/".join(p.strip("/") for p in (path, file) if p)
    return f"{base}/blob/{quote(sha)}/{quote(full)}" + (f"#L{line}" if line else "")


@dataclass(frozen=True)
class Located:
    text: str
    file: str = ""
    line: int = 0
    url: str = ""


def located_errors(errors: list[str], repo: str, sha: str, path: str) -> list[Located]:
    """Errors as `file:line: ...` lines, with a link to that line where the host has one."""
    out = []
    for text in errors:
        m = _LOCATED.match(text)
        if m is None:
            out.append(Located(text))
            continue
        line = int(m.group("line"))
        out.append(Located(text, m.group("file"), line,
                           file_url(repo, sha, path, m.group("file"), line)))
    return out


# -- one object ---------------------------------------------------------------------------
@dataclass
class ObjectPage:
    key: ObjectKey
    live: dict | None
    live_yaml: str
    health: Health
    sync: str = ""
    file: str = ""
    line: int = 0
    declared_by: str = ""           # the declared owner a child grew from, e.g. Deployment/web
    diff: list[Row] = field(default_factory=list)
    has_git_copy: bool = False
    events: list[dict] = field(default_factory=list)
    drift: list[dict] = field(default_factory=list)
    containers: list[dict] = field(default_factory=list)


def object_page(store: Store, key: ObjectKey, drift_records: list[dict]) -> ObjectPage:
    live = store.get(key)
    entry = store.inventory().get(key)
    applied = store.applied(key) if entry is not None else None
    secret_values = (values_of(live) if live and key.kind == "Secret" else set()) | \
        (values_of(applied) if applied and key.kind == "Secret" else set())
    shown = mask_secret(live, secret_values) if live else None
    health = health_in(store, live) if live else Health("Missing", "not in the store")
    page = ObjectPage(key, shown, to_yaml(_without_noise(shown)) if shown else "", health)
    if entry is not None:
        page.sync, page.file, page.line = entry.sync_status, entry.file, entry.line
    elif live is not None:
        owner, owner_entry = declaring_object(store, live)
        if owner is not None and owner_entry is not None:
            page.file, page.line = owner_entry.file, owner_entry.line
            page.declared_by = f"{owner.get('kind')}/{owner['metadata'].get('name')}"
    if applied is not None and live is not None:
        live_view, want = compared_views(applied, live)
        page.has_git_copy = True
        page.diff = side_by_side(to_yaml(mask_secret(want, secret_values)),
                                 to_yaml(mask_secret(live_view, secret_values)), context=4)
    elif applied is not None:
        page.has_git_copy = True
    page.events = events_for(store, key, live)
    page.drift = [r for r in drift_records if _names(r.get("object") or {}, key)]
    if key.kind == "Pod" and live is not None:
        page.containers = pod_containers(live)
    return page


def _without_noise(obj: dict) -> dict:
    """managedFields make a manifest unreadable; `kubectl get -o yaml` hides them too."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _names(record_obj: dict, key: ObjectKey) -> bool:
    """Whether a drift record is about this object (a pod: its runtime drift)."""
    if record_obj.get("kind") == key.kind and record_obj.get("name") == key.name and \
            (record_obj.get("namespace") or "") in (key.namespace, ""):
        return True
    return key.kind == "Pod" and record_obj.get("pod") == key.name


def events_for(store: Store, key: ObjectKey, live: dict | None) -> list[dict]:
    uid = ((live or {}).get("metadata") or {}).get("uid")
    out = []
    for ev in store.list("Event", key.namespace or None):
        inv = ev.get("involvedObject") or {}
        if (uid and inv.get("uid") == uid) or (inv.get("kind") == key.kind and
                                              inv.get("name") == key.name):
            out.append(ev)
    return sorted(out, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")[-50:]


def pod_containers(pod: dict) -> list[dict]:
    statuses = {s.get("name"): s for s in [
        *((pod.get("status") or {}).get("initContainerStatuses") or []),
        *((pod.get("status") or {}).get("containerStatuses") or [])]}
    out = []
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        st = statuses.get(c.get("name")) or {}
        health = container_health(st or None)
        out.append({"name": c.get("name", ""), "image": c.get("image", ""),
                    "health": health.status,
                    "message": health.message, "restarts": st.get("restartCount", 0),
                    "ready": bool(st.get("ready")),
                    "has_previous": bool((st.get("lastState") or {}).get("terminated"))})
    return out

