"""StatefulSet and DaemonSet reconcilers: pure, table-driven."""

import copy
import random
from datetime import UTC, datetime

import pytest

from gitops.controllers import daemonset, statefulset
from gitops.model import ObjectKey
from gitops.model.actions import Create, Delete, SetStatus
from gitops.store.registry import execute
from gitops.testing import memory_store

NOW = 1_800_000_000.0
LONG_AGO = "2026-01-01T00:00:00Z"


def _iso(ts):
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- StatefulSet fixtures --------------------------------------------------------------------

def sts(replicas=3, image="img:1", policy=None, strategy=None, claims=True, min_ready=0,
        current_revision=None):
    obj = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid",
                        "generation": 4},
           "spec": {"replicas": replicas, "serviceName": "web-hl",
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{
                                     "name": "c", "image": image,
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                                     "volumes": [{"name": "config",
                                                  "configMap": {"name": "cfg"}}]}}}}
    if policy:
        obj["spec"]["podManagementPolicy"] = policy
    if strategy:
        obj["spec"]["updateStrategy"] = strategy
    if min_ready:
        obj["spec"]["minReadySeconds"] = min_ready
    if claims:
        obj["spec"]["volumeClaimTemplates"] = [{
            "metadata": {"name": "data", "labels": {"tier": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}]
    if current_revision:
        obj["status"] = {"currentRevision": current_revision}
    return obj


def rev(s):
    return statefulset.revision_name(s, statefulset.effective_template(s))


# pod states: R running+ready, U running not ready, P pending, F failed, D terminating,
# N ready only just now (for minReadySeconds)
def spod(s, ordinal, state="R", made_from=None):
    src = made_from or s
    p = statefulset.new_pod(src, statefulset.effective_template(src), rev(src), ordinal)
    p["metadata"]["uid"] = f"pod-{ordinal}"
    p["metadata"]["creationTimestamp"] = LONG_AGO
    p["spec"]["nodeName"] = "n1"
    phase = {"P": "Pending", "F": "Failed"}.get(state, "Running")
    ready = state in ("R", "D", "N")
    since = _iso(NOW - 1) if state == "N" else LONG_AGO
    p["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": str(ready), "lastTransitionTime": since}]}
    if state == "D":
        p["metadata"]["deletionTimestamp"] = LONG_AGO
    return p


def pods_of(s, states, made_from=None):
    """states: a string, one letter per ordinal; '-' means no pod."""
    return [spod(s, i, st, made_from) for i, st in enumerate(states) if st != "-"]


def claims_of(s, ordinals):
    return [statefulset.new_claim(s, s["spec"]["volumeClaimTemplates"][0], i) for i in ordinals]


def created(actions, kind="Pod"):
    return [a.obj["metadata"]["name"] for a in actions
            if isinstance(a, Create) and a.obj["kind"] == kind]


def deleted(actions, kind="Pod"):
    return [a.key.name for a in actions if isinstance(a, Delete) and a.key.kind == kind]


def status_of(actions):
    [st] = [a.status for a in actions if isinstance(a, SetStatus)]
    return st


# -- StatefulSet: scaling ---------------------------------------------------------------------

@pytest.mark.parametrize("replicas, policy, states, min_ready, creates, deletes", [
    # OrderedReady: one at a time, each waiting for the previous to be Running and Ready
    (3, None, "", 0, ["web-0"], []),
    (3, None, "R", 0, ["web-1"], []),
    (3, None, "RR", 0, ["web-2"], []),
    (3, None, "RRR", 0, [], []),
    (3, None, "RU", 0, [], []),                     # running, not ready: wait
    (3, None, "RP", 0, [], []),                     # pending: wait
    (3, None, "UR", 0, [], []),                     # a lower pod went unready: wait
    (3, None, "N", 0, ["web-1"], []),               # ready is enough without minReadySeconds
    (3, None, "N", 30, [], []),                     # ...not with it
    (3, None, "R", 30, ["web-1"], []),              # ready long enough
    (3, None, "D", 0, [], []),                      # terminating: wait for it to be gone
    (3, None, "-R", 0, ["web-0"], []),              # a hole is refilled first
    (3, None, "RF", 0, [], ["web-1"]),              # failed: deleted, recreated once gone
    # Parallel: everything at once, whatever the others' state
    (3, "Parallel", "", 0, ["web-0", "web-1", "web-2"], []),
    (3, "Parallel", "P", 0, ["web-1", "web-2"], []),
    (3, "Parallel", "D-", 0, ["web-1", "web-2"], []),
    (3, "Parallel", "FU", 0, ["web-2"], ["web-0"]),
    # scale-down: highest ordinal first, one at a time, waiting for it to be gone
    (1, None, "RRR", 0, [], ["web-2"]),
    (1, None, "RRD", 0, [], []),
    (1, None, "RD", 0, [], []),
    (1, None, "URR", 0, [], []),                    # an unhealthy pod below blocks
    (1, None, "RRU", 0, [], ["web-2"]),             # ...but the first unhealthy may go
    (1, None, "RUR", 0, [], ["web-2"]),             # a healthy top pod may go
    (1, None, "RUU", 0, [], []),                    # ...an unhealthy one above it may not
    (0, None, "R", 0, [], ["web-0"]),
    (1, "Parallel", "RRR", 0, [], ["web-2", "web-1"]),
    (1, "Parallel", "RDU", 0, [], ["web-2"]),
])
def test_statefulset_scaling(replicas, policy, states, min_ready, creates, deletes):
    s = sts(replicas=replicas, policy=policy, min_ready=min_ready)
    pods = pods_of(s, states)
    actions = statefulset.reconcile(s, pods, claims_of(s, range(len(states))), NOW)
    assert created(actions) == creates
    assert deleted(actions) == deletes
    assert deleted(actions, "PersistentVolumeClaim") == []      # claims are retained


def test_statefulset_scale_down_keeps_claims_and_scale_up_reuses_them():
    s = sts(replicas=1)
    claims = claims_of(s, range(3))
    actions = statefulset.reconcile(s, pods_of(s, "RRR"), claims, NOW)
    assert deleted(actions) == ["web-2"]
    assert not [a for a in actions if getattr(a, "key", None) and
                a.key.kind == "PersistentVolumeClaim"]
    up = sts(replicas=3)
    actions = statefulset.reconcile(up, pods_of(up, "R"), claims, NOW)
    assert created(actions) == ["web-1"]
    assert created(actions, "PersistentVolumeClaim") == []      # data-web-1 still there


def test_statefulset_claims_created_before_pod_and_wired_into_volumes():
    s = sts()
    s["spec"]["template"]["spec"]["volumes"].append({"name": "data", "emptyDir": {}})
    actions = statefulset.reconcile(s, pods_of(s, "R"), claims_of(s, [0]), NOW)
    kinds = [a.obj["kind"] for a in actions if isinstance(a, Create)]
    assert kinds == ["PersistentVolumeClaim", "Pod"]
    claim, pod = (a.obj for a in actions if isinstance(a, Create))
    assert claim["metadata"]["name"] == "data-web-1"
    assert claim["metadata"]["namespace"] == "default"
    assert claim["metadata"]["labels"] == {"tier": "db", "app": "web"}
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "ownerReferences" not in claim["metadata"]               # Retain: never collected
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data",
                               "persistentVolumeClaim": {"claimName": "data-web-1"}}
    assert volumes["config"] == {"name": "config", "configMap": {"name": "cfg"}}
    assert len(pod["spec"]["volumes"]) == 2                         # template's emptyDir replaced


@pytest.mark.parametrize("policy, states, claims, want", [
    (None, "", [], ["data-web-0"]),
    ("Parallel", "", [], ["data-web-0", "data-web-1", "data-web-2"]),
    ("Parallel", "", [1], ["data-web-0", "data-web-2"]),
    (None, "RR", [0], ["data-web-1", "data-web-2"]),     # a live pod's lost claim comes back
])
def test_statefulset_claim_names(policy, states, claims, want):
    s = sts(policy=policy)
    actions = statefulset.reconcile(s, pods_of(s, states), claims_of(s, claims), NOW)
    assert created(actions, "PersistentVolumeClaim") == want


def test_statefulset_waits_for_a_claim_being_deleted():
    s = sts()
    claims = claims_of(s, [0])
    claims[0]["metadata"]["deletionTimestamp"] = LONG_AGO
    assert created(statefulset.reconcile(s, [], claims, NOW)) == []


def test_statefulset_without_claim_templates_has_no_claim_volumes():
    s = sts(claims=False)
    [pod] = [a.obj for a in statefulset.reconcile(s, [], [], NOW) if isinstance(a, Create)]
    assert pod["spec"]["volumes"] == [{"name": "config", "configMap": {"name": "cfg"}}]


def test_statefulset_pod_identity():
    s = sts()
    [pod] = [a.obj for a in statefulset.reconcile(s, [], [], NOW)
             if isinstance(a, Create) and a.obj["kind"] == "Pod"]
    assert pod["metadata"]["name"] == "web-0"
    assert pod["spec"]["hostname"] == "web-0"
    assert pod["spec"]["subdomain"] == "web-hl"
    assert pod["metadata"]["labels"] == {
        "app": "web", statefulset.POD_NAME_LABEL: "web-0", statefulset.POD_INDEX_LABEL: "0",
        statefulset.REVISION_LABEL: rev(s)}
    assert rev(s).startswith("web-")
    ref = pod["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("StatefulSet", "sts-uid", True)
    assert pod["status"] == {"phase": "Pending"}
    assert "nodeName" not in pod["spec"]                            # the scheduler binds it
    s["spec"].pop("serviceName")
    [pod] = [a.obj for a in statefulset.reconcile(s, [], [], NOW)
             if isinstance(a, Create) and a.obj["kind"] == "Pod"]
    assert "subdomain" not in pod["spec"]


def test_statefulset_leaves_pods_it_does_not_control():
    s = sts(replicas=2)
    stranger = spod(s, 0)
    stranger["metadata"]["ownerReferences"][0]["uid"] = "other"
    other_ns = spod(s, 1)
    other_ns["metadata"]["namespace"] = "elsewhere"
    unrelated = spod(s, 0)
    unrelated["metadata"]["name"] = "web-01"                          # not a canonical ordinal
    actions = statefulset.reconcile(s, [stranger, other_ns, unrelated], [], NOW)
    assert created(actions) == [] and deleted(actions) == []
    assert status_of(actions)["replicas"] == 0


def test_statefulset_being_deleted_does_nothing():
    s = sts()
    s["metadata"]["deletionTimestamp"] = LONG_AGO
    assert statefulset.reconcile(s, [], [], NOW) == []


# -- StatefulSet: updates ---------------------------------------------------------------------

OLD, NEW = sts(image="img:1"), sts(image="img:2")


@pytest.mark.parametrize("strategy, old_new, deletes", [
    # RollingUpdate: highest ordinal first, one at a time, only when all are Running+Ready
    (None, "ooo", ["web-2"]),
    (None, "oon", ["web-1"]),
    (None, "onn", ["web-0"]),
    (None, "nnn", []),
    (None, "oo-", []),                          # web-2 is being recreated: wait
    (None, "oou", []),                          # the new pod is not ready yet: wait
    (None, "uoo", []),                          # any unready pod blocks the update
    ({"type": "RollingUpdate"}, "ooo", ["web-2"]),
    # partition: ordinals below it keep the old revision
    ({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}, "ooo", ["web-2"]),
    ({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}, "oon", []),
    ({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}, "oon", ["web-1"]),
    ({"type": "RollingUpdate", "rollingUpdate": {"partition": 5}}, "ooo", []),
    # OnDelete: running pods are never touched
    ({"type": "OnDelete"}, "ooo", []),
    ({"type": "OnDelete"}, "oon", []),
])
def test_statefulset_rolling_update(strategy, old_new, deletes):
    s = sts(image="img:2", strategy=strategy, current_revision=rev(OLD))
    pods = []
    for i, c in enumerate(old_new):
        if c == "o":
            pods.append(spod(s, i, made_from=OLD))
        elif c == "n":
            pods.append(spod(s, i))
        elif c == "u":
            pods.append(spod(s, i, "U"))
    actions = statefulset.reconcile(s, pods, claims_of(s, range(3)), NOW)
    assert deleted(actions) == deletes
    assert created(actions) == ([] if "-" not in old_new else [f"web-{old_new.index('-')}"])


@pytest.mark.parametrize("strategy, missing, want_image", [
    (None, 2, "img:2"),                                               # >= partition: new
    ({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}, 0, "img:1"),  # stays old
    ({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}, 2, "img:2"),
    ({"type": "OnDelete"}, 0, "img:2"),                               # deleted: comes back new
])
def test_statefulset_recreated_pod_revision(strategy, missing, want_image):
    s = sts(image="img:2", strategy=strategy, current_revision=rev(OLD))
    pods = [spod(s, i, made_from=OLD) for i in range(3) if i != missing]
    [pod] = [a.obj for a in statefulset.reconcile(s, pods, claims_of(s, range(3)), NOW)
             if isinstance(a, Create)]
    assert pod["metadata"]["name"] == f"web-{missing}"
    assert pod["spec"]["containers"][0]["image"] == want_image
    expected_rev = rev(s) if want_image == "img:2" else rev(OLD)
    assert pod["metadata"]["labels"][statefulset.REVISION_LABEL] == expected_rev
    # the recreated pod is a faithful copy, identity and claim included
    assert pod["spec"]["hostname"] == f"web-{missing}" and "nodeName" not in pod["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": f"data-web-{missing}"}} \
        in pod["spec"]["volumes"]
    if want_image == "img:1":
        fresh = statefulset.new_pod(OLD, statefulset.effective_template(OLD), rev(OLD), missing)
        assert pod == fresh


def test_statefulset_config_change_is_a_new_revision():
    s = sts()
    s["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "e"}}]
    configs = {"e": {"data": {"a": "1"}}}
    lookup = lambda kind, ns, name: configs.get(name)
    before = status_of(statefulset.reconcile(s, [], [], NOW, lookup))["updateRevision"]
    configs["e"] = {"data": {"a": "2"}}
    after = status_of(statefulset.reconcile(s, [], [], NOW, lookup))["updateRevision"]
    assert before != after


@pytest.mark.parametrize("states, want", [
    # per ordinal: o old and ready, n new and ready, U new not ready, D old terminating
    ("ooo", {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "currentReplicas": 3,
             "updatedReplicas": 0, "currentRevision": "old"}),
    ("oon", {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "currentReplicas": 2,
             "updatedReplicas": 1, "currentRevision": "old"}),
    ("ooU", {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "currentReplicas": 2,
             "updatedReplicas": 1, "currentRevision": "old"}),
    ("ooD", {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "currentReplicas": 2,
             "updatedReplicas": 0, "currentRevision": "old"}),
    ("nnn", {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "currentReplicas": 3,
             "updatedReplicas": 3, "currentRevision": "new"}),          # rollout complete
])
def test_statefulset_status(states, want):
    s = sts(image="img:2", current_revision=rev(OLD))
    pods = [spod(s, i, "R" if c in "on" else c, made_from=OLD if c in "oD" else None)
            for i, c in enumerate(states)]
    st = status_of(statefulset.reconcile(s, pods, claims_of(s, range(3)), NOW))
    want = {**want, "currentRevision": rev(OLD) if want["currentRevision"] == "old" else rev(s)}
    assert {k: st[k] for k in want} == want
    assert st["updateRevision"] == rev(s)
    assert st["observedGeneration"] == 4


def test_statefulset_first_status_uses_update_revision():
    s = sts()
    st = status_of(statefulset.reconcile(s, [], [], NOW))
    assert st["currentRevision"] == st["updateRevision"] == rev(s)
    assert st["replicas"] == 0


def test_statefulset_converges_through_the_store(tmp_path):
    """Ordered start-up, scale-down and a rolling update against the real store."""
    store = memory_store()
    store.create(sts(replicas=3))
    key = ObjectKey("StatefulSet", "default", "web")

    def run(make_ready=True):
        s = store.get(key)
        execute(store, statefulset.reconcile(s, store.list("Pod"),
                                             store.list("PersistentVolumeClaim"), NOW),
                "statefulset")
        for p in store.list("Pod"):
            pkey = ObjectKey("Pod", "default", p["metadata"]["name"])
            if p["metadata"].get("deletionTimestamp"):
                store.delete(pkey)                 # the node finishes the deletion
            elif make_ready and not p["spec"].get("nodeName"):
                p["spec"]["nodeName"] = "n1"
                store.update(p)
                store.update_status(pkey, {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": LONG_AGO}]})

    def names(kind):
        return [o["metadata"]["name"] for o in store.list(kind)]

    run(make_ready=False)
    assert names("Pod") == ["web-0"] and names("PersistentVolumeClaim") == ["data-web-0"]
    run(make_ready=False)
    assert names("Pod") == ["web-0"]               # web-0 is not ready: web-1 waits
    for _ in range(4):
        run()
    assert names("Pod") == ["web-0", "web-1", "web-2"]
    st = store.get(key)["status"]
    assert st["readyReplicas"] == 3 and st["currentRevision"] == st["updateRevision"]

    s = store.get(key)
    s["spec"]["replicas"] = 1
    store.update(s)
    run()
    assert names("Pod") == ["web-0", "web-1"]      # web-2 first, and then web-1
    run()
    run()
    assert names("Pod") == ["web-0"]
    assert names("PersistentVolumeClaim") == ["data-web-0", "data-web-1", "data-web-2"]

    s = store.get(key)
    s["spec"]["replicas"] = 2
    s["spec"]["template"]["spec"]["containers"][0]["image"] = "img:2"
    store.update(s)
    for _ in range(6):
        run()
    images = [p["spec"]["containers"][0]["image"] for p in store.list("Pod")]
    assert names("Pod") == ["web-0", "web-1"] and images == ["img:2", "img:2"]
    st = store.get(key)["status"]
    assert st["updatedReplicas"] == 2 and st["currentRevision"] == st["updateRevision"]
    store.close()


# -- DaemonSet --------------------------------------------------------------------------------

def ds(image="img:1", selector=None, strategy=None, min_ready=0):
    obj = {"apiVersion": "apps/v1", "kind": "DaemonSet",
           "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid",
                        "generation": 2},
           "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}},
                                 "spec": {"containers": [{"name": "c", "image": image}]}}}}
    if selector:
        obj["spec"]["template"]["spec"]["nodeSelector"] = selector
    if strategy:
        obj["spec"]["updateStrategy"] = strategy
    if min_ready:
        obj["spec"]["minReadySeconds"] = min_ready
    return obj


def node(name, ready=True, labels=None, unschedulable=False):
    n = {"kind": "Node", "metadata": {"name": name, "labels": labels or {}},
         "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}
    if unschedulable:
        n["spec"] = {"unschedulable": True}
    return n


def dpod(d, node_name, state="R", name=None, created=LONG_AGO):
    thash = daemonset.template_hash(daemonset.effective_template(d))
    p = daemonset.new_pod(d, daemonset.effective_template(d), thash, node_name,
                          random.Random(node_name), set())
    p["metadata"]["name"] = name or f"agent-{node_name}"
    p["metadata"]["uid"] = f"uid-{p['metadata']['name']}"
    p["metadata"]["creationTimestamp"] = created
    phase = {"P": "Pending", "F": "Failed"}.get(state, "Running")
    since = _iso(NOW - 1) if state == "N" else LONG_AGO
    p["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": str(state in ("R", "D", "N")), "lastTransitionTime": since}]}
    if state == "D":
        p["metadata"]["deletionTimestamp"] = LONG_AGO
    return p


def placed(actions):
    return sorted(a.obj["spec"]["nodeName"] for a in actions if isinstance(a, Create))


NODES = [node("n1"), node("n2", labels={"disk": "ssd"}), node("n3", ready=False,
         labels={"disk": "ssd"}), node("n4", labels={"disk": "ssd"}, unschedulable=True)]


@pytest.mark.parametrize("selector, want", [
    (None, ["n1", "n2", "n4"]),                  # not the NotReady node; unschedulable is fine
    ({"disk": "ssd"}, ["n2", "n4"]),
    ({"disk": "hdd"}, []),
])
def test_daemonset_one_pod_per_eligible_node(selector, want):
    d = ds(selector=selector)
    actions = daemonset.reconcile(d, [], NODES, NOW, random.Random(0))
    assert placed(actions) == want
    pods = [a.obj for a in actions if isinstance(a, Create)]
    names = [p["metadata"]["name"] for p in pods]
    assert len(set(names)) == len(names)
    for p in pods:
        base, _, suffix = p["metadata"]["name"].rpartition("-")
        assert base == "agent" and len(suffix) == 5
        assert p["metadata"]["ownerReferences"][0]["uid"] == "ds-uid"
        assert p["metadata"]["labels"]["app"] == "agent"
        assert p["metadata"]["labels"][daemonset.REVISION_LABEL]
        assert p["status"]["conditions"] == [{"type": "PodScheduled", "status": "True"}]
    st = status_of(actions)
    assert st["desiredNumberScheduled"] == len(want) and st["currentNumberScheduled"] == 0
    assert st["observedGeneration"] == 2


def test_daemonset_is_stable_when_converged():
    d = ds()
    pods = [dpod(d, "n1"), dpod(d, "n2"), dpod(d, "n4")]
    actions = daemonset.reconcile(d, pods, NODES, NOW, random.Random(0))
    assert [type(a) for a in actions] == [SetStatus]
    st = status_of(actions)
    assert st == {"observedGeneration": 2, "desiredNumberScheduled": 3,
                  "currentNumberScheduled": 3, "numberReady": 3, "numberAvailable": 3,
                  "numberUnavailable": 0, "updatedNumberScheduled": 3, "numberMisscheduled": 0}


@pytest.mark.parametrize("nodes, pods, creates, deletes", [
    # node removed: its pod goes
    ([node("n1", labels={"disk": "ssd"})], [("n1", "R"), ("gone", "R")], [], ["agent-gone"]),
    # node no longer matches the selector: its pod goes
    ([node("n1", labels={"disk": "ssd"}), node("n2")], [("n1", "R"), ("n2", "R")], [],
     ["agent-n2"]),
    # node NotReady: its pod stays, nothing new is placed there
    ([node("n1", labels={"disk": "ssd"}), node("n2", ready=False, labels={"disk": "ssd"})],
     [("n1", "R"), ("n2", "R")], [], []),
    ([node("n1", labels={"disk": "ssd"}), node("n2", ready=False, labels={"disk": "ssd"})],
     [("n1", "R")], [], []),
    # new node: gets a pod
    ([node("n1", labels={"disk": "ssd"}), node("n2", labels={"disk": "ssd"})],
     [("n1", "R")], ["n2"], []),
    # failed pod: deleted now, replaced once gone
    ([node("n1", labels={"disk": "ssd"})], [("n1", "F")], [], ["agent-n1"]),
    # terminating pod: wait for it to be gone
    ([node("n1", labels={"disk": "ssd"})], [("n1", "D")], [], []),
])
def test_daemonset_follows_nodes(nodes, pods, creates, deletes):
    d = ds(selector={"disk": "ssd"})
    actions = daemonset.reconcile(d, [dpod(d, n, st) for n, st in pods], nodes, NOW,
                                  random.Random(0))
    assert placed(actions) == creates
    assert sorted(deleted(actions)) == deletes


def test_daemonset_deletes_duplicates_keeping_the_oldest():
    d = ds()
    pods = [dpod(d, "n1", name="agent-new", created="2026-02-01T00:00:00Z"),
            dpod(d, "n1", name="agent-old", created="2026-01-01T00:00:00Z"),
            dpod(d, "n1", name="agent-mid", created="2026-01-15T00:00:00Z")]
    actions = daemonset.reconcile(d, pods, [node("n1")], NOW, random.Random(0))
    assert deleted(actions) == ["agent-mid", "agent-new"]
    assert placed(actions) == []


def test_daemonset_ignores_pods_it_does_not_control():
    d = ds()
    stranger = dpod(d, "n1")
    stranger["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    actions = daemonset.reconcile(d, [stranger], [node("n1")], NOW, random.Random(0))
    assert placed(actions) == ["n1"] and deleted(actions) == []


def test_daemonset_misscheduled_count():
    d = ds(selector={"disk": "ssd"})
    nodes = [node("n1", labels={"disk": "ssd"}), node("n2"),
             node("n3", ready=False, labels={"disk": "ssd"})]
    pods = [dpod(d, "n1"), dpod(d, "n2"), dpod(d, "n3")]
    st = status_of(daemonset.reconcile(d, pods, nodes, NOW, random.Random(0)))
    assert st["desiredNumberScheduled"] == 1 and st["numberMisscheduled"] == 2


FOUR = [node(f"n{i}") for i in range(1, 5)]
OLD_DS = ds(image="img:1")


@pytest.mark.parametrize("strategy, states, deletes", [
    # states per node n1..n4: o old available, O old unavailable, n new available,
    # N new not yet available, - no pod
    (None, "oooo", ["n1"]),                                       # default maxUnavailable 1
    ({"rollingUpdate": {"maxUnavailable": 2}}, "oooo", ["n1", "n2"]),
    ({"rollingUpdate": {"maxUnavailable": "50%"}}, "oooo", ["n1", "n2"]),
    ({"rollingUpdate": {"maxUnavailable": "10%"}}, "oooo", ["n1"]),   # rounds up
    ({"rollingUpdate": {"maxUnavailable": 0}}, "oooo", ["n1"]),       # 0 would deadlock
    (None, "nooo", ["n2"]),
    (None, "Nooo", []),                                           # budget spent on n1
    (None, "-ooo", []),                                           # n1's pod is being created
    (None, "oOoo", ["n2"]),                                       # unavailable old goes first
    ({"rollingUpdate": {"maxUnavailable": 2}}, "oOoo", ["n2", "n1"]),
    (None, "oOOo", ["n2", "n3"]),                                 # ...even beyond the budget
    (None, "nnnn", []),
    ({"type": "OnDelete"}, "oooo", []),
    ({"type": "OnDelete"}, "oO-o", []),
])
def test_daemonset_rolling_update_budget(strategy, states, deletes):
    d = ds(image="img:2", strategy=strategy, min_ready=10)
    pods = []
    for i, c in enumerate(states):
        name = f"n{i + 1}"
        if c in "oO":
            pods.append(dpod(OLD_DS, name, "R" if c == "o" else "U"))
        elif c in "nN":
            pods.append(dpod(d, name, "R" if c == "n" else "N"))
    actions = daemonset.reconcile(d, pods, FOUR, NOW, random.Random(0))
    assert deleted(actions) == [f"agent-{n}" for n in deletes]
    assert placed(actions) == [f"n{i + 1}" for i, c in enumerate(states) if c == "-"]
    st = status_of(actions)
    assert st["updatedNumberScheduled"] == sum(c in "nN" for c in states)
    assert st["numberAvailable"] == sum(c in "on" for c in states)


def test_daemonset_config_change_rolls():
    d = ds()
    d["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "s"}}]
    secrets = {"s": {"data": {"k": "YQ=="}}}
    lookup = lambda kind, ns, name: secrets.get(name)
    thash = daemonset.template_hash(daemonset.effective_template(d, lookup))
    pod = dpod(d, "n1")
    pod["metadata"]["labels"][daemonset.REVISION_LABEL] = thash
    assert deleted(daemonset.reconcile(d, [pod], [node("n1")], NOW, random.Random(0),
                                       lookup)) == []
    secrets["s"] = {"data": {"k": "Yg=="}}
    assert deleted(daemonset.reconcile(d, [pod], [node("n1")], NOW, random.Random(0),
                                       lookup)) == ["agent-n1"]


def test_daemonset_being_deleted_does_nothing():
    d = ds()
    d["metadata"]["deletionTimestamp"] = LONG_AGO
    assert daemonset.reconcile(d, [], FOUR, NOW, random.Random(0)) == []


def test_daemonset_pod_does_not_alias_the_template():
    d = ds()
    before = copy.deepcopy(d)
    actions = daemonset.reconcile(d, [], FOUR, NOW, random.Random(0))
    for a in actions:
        if isinstance(a, Create):
            a.obj["spec"]["containers"][0]["image"] = "mutated"
    assert d == before
