"""The cluster's pure decisions: join tokens, NodeRestriction, pod CIDRs, node lifecycle
(silence, taint, eviction after tolerations) and routes between nodes."""

from __future__ import annotations

import pytest

from gitops.api.join import JoinToken, ca_hash, parse_token, valid_node_name
from gitops.api.kube.noderestriction import Request, forbidden, references
from gitops.api.kube.request import parse_path
from gitops.controllers import nodeipam
from gitops.controllers.nodelifecycle import (
    UNREACHABLE_TAINT,
    Observed,
    Settings,
    reconcile_node,
    reconcile_pods,
    toleration_left,
)
from gitops.errors import GitopsError
from gitops.model.actions import Delete, SetStatus, Update
from gitops.model.times import rfc3339

NOW = 1_800_000_000.0


# -- join tokens -------------------------------------------------------------------------
def test_a_token_round_trips_and_pins_the_ca():
    token = JoinToken(ca_hash(b"PEM"), "s" * 40)
    assert token.text().startswith("K10" + ca_hash(b"PEM") + "::node:")
    assert parse_token(token.text() + "\n") == token


@pytest.mark.parametrize("text", ["", "K10abc::node:" + "s" * 40,
                                  "K10" + "0" * 64 + "::node:short",
                                  "hello"])
def test_a_malformed_token_is_refused_without_echoing_it(text):
    with pytest.raises(GitopsError) as err:
        parse_token(text, "the token file t")
    assert "the token file t" in str(err.value)
    if len(text) > 20:
        assert text.split(":")[-1] not in str(err.value)


def test_node_names_are_dns_subdomains():
    assert valid_node_name("h1") and valid_node_name("node-a.example")
    assert not valid_node_name("H1") and not valid_node_name("a_b") and not valid_node_name("")


# -- NodeRestriction ----------------------------------------------------------------------
POD_ON_H2 = {"kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
             "spec": {"nodeName": "h2", "containers": [
                 {"name": "c", "envFrom": [{"secretRef": {"name": "db"}}],
                  "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg",
                                                                          "key": "x"}}}]}],
                 "volumes": [{"name": "v", "projected": {"sources": [
                     {"secret": {"name": "tls"}}]}}]}}
POD_ON_H3 = {**POD_ON_H2, "metadata": {"name": "q", "namespace": "default"},
             "spec": {**POD_ON_H2["spec"], "nodeName": "h3"}}


def _lookup(kind, ns, name):
    return {("Pod", "default", "p"): POD_ON_H2,
            ("Pod", "default", "q"): POD_ON_H3}.get((kind, ns, name))


def _pods_on(node, ns):
    return [p for p in (POD_ON_H2, POD_ON_H3) if p["spec"]["nodeName"] == node]


def _may(method, path, body_name=""):
    return forbidden("h2", Request(method, parse_path(path), path, body_name), _lookup,
                     _pods_on)


@pytest.mark.parametrize("method,path,body_name", [
    ("GET", "/api/v1/pods", ""),
    ("GET", "/api/v1/nodes", ""),
    ("GET", "/api/v1/services", ""),
    ("GET", "/api/v1/endpoints", ""),
    ("GET", "/api/v1/namespaces/default/secrets/db", ""),
    ("GET", "/api/v1/namespaces/default/secrets/tls", ""),
    ("GET", "/api/v1/namespaces/default/configmaps/cfg", ""),
    ("POST", "/api/v1/nodes", "h2"),
    ("PUT", "/api/v1/nodes/h2", ""),
    ("PUT", "/api/v1/nodes/h2/status", ""),
    ("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", "h2"),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/h2", ""),
    ("PUT", "/api/v1/namespaces/default/pods/p/status", ""),
    ("DELETE", "/api/v1/namespaces/default/pods/p", ""),
    ("POST", "/api/v1/namespaces/default/events", "x.1"),
    ("GET", "/version", ""),
])
def test_a_node_may_do_what_a_kubelet_does(method, path, body_name):
    assert _may(method, path, body_name) == ""


@pytest.mark.parametrize("method,path,body_name,says", [
    ("GET", "/api/v1/secrets", "", "only by name"),
    ("GET", "/api/v1/namespaces/default/secrets", "", "only by name"),
    ("GET", "/api/v1/namespaces/default/secrets/other", "", "only one a pod"),
    ("GET", "/api/v1/namespaces/default/configmaps/other", "", "only one a pod"),
    ("POST", "/api/v1/nodes", "h3", 'not nodes "h3"'),
    ("PUT", "/api/v1/nodes/h3/status", "", 'not nodes "h3"'),
    ("DELETE", "/api/v1/nodes/h2", "", "only its own Node"),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/h3", "",
     "only its own Lease"),
    ("PUT", "/api/v1/namespaces/default/pods/q/status", "", "only pods bound to it"),
    ("DELETE", "/api/v1/namespaces/default/pods/q", "", "only pods bound to it"),
    ("PUT", "/api/v1/namespaces/default/pods/p", "", "cannot update pods"),
    ("POST", "/api/v1/namespaces/default/pods", "new", "cannot create pods"),
    ("POST", "/apis/apps/v1/namespaces/default/deployments", "d", "cannot create"),
    ("DELETE", "/api/v1/namespaces/default/services/web", "", "cannot delete"),
    ("GET", "/apis/apps/v1/deployments", "", "cannot list"),
    ("GET", "/api/v1/namespaces/default/pods/p/log", "", "cannot get pods/log"),
    ("POST", "/gitops/v1/sync", "", "cannot post"),
    ("POST", "/gitops/v1/shutdown", "", "cannot post"),
])
def test_a_node_may_not_do_more(method, path, body_name, says):
    try:
        target = parse_path(path)
    except Exception:       # noqa: BLE001 - not a resource path
        target = None
    reason = forbidden("h2", Request(method, target, path, body_name), _lookup, _pods_on)
    assert says in reason and 'node "h2"' in reason


def test_references_cover_volumes_env_and_pull_secrets():
    refs = references({"spec": {"imagePullSecrets": [{"name": "reg"}],
                                "volumes": [{"configMap": {"name": "a"}},
                                            {"secret": {"secretName": "b"}},
                                            {"persistentVolumeClaim": {"claimName": "c"}}],
                                "containers": []}})
    assert refs == {"ConfigMap": {"a", "kube-root-ca.crt"}, "Secret": {"reg", "b"},
                    "PersistentVolumeClaim": {"c"}, "ServiceAccount": {"default"}}


def _token(pod: str, sa: str = "default", node: str = "h2") -> str:
    path = f"/api/v1/namespaces/default/serviceaccounts/{sa}/token"
    return forbidden(node, Request("POST", parse_path(path), path, bound_pod=pod), _lookup,
                     _pods_on)


def test_a_node_asks_tokens_only_for_its_pods_service_accounts_bound_to_them():
    assert _token("p") == ""                         # p runs on h2 as "default"
    assert "only for the ServiceAccount of a pod bound to it" in _token("q")   # on h3
    assert "only for the ServiceAccount" in _token("p", sa="builder")   # not p's account
    assert "only for the ServiceAccount" in _token("")                  # bound to nothing
    assert "only for the ServiceAccount" in _token("gone")
    assert _may("GET", "/api/v1/namespaces/default/serviceaccounts/default") == ""
    assert _may("GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt") == ""
    assert "only one a pod" in _may("GET", "/api/v1/namespaces/default/serviceaccounts/x")


# -- node IPAM ----------------------------------------------------------------------------
def _node(name, cidr="", created="2026-01-01T00:00:00Z", ip="", taints=None, ready=True,
          heartbeat=""):
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "creationTimestamp": created, "uid": f"u-{name}"},
            "spec": {**({"podCIDR": cidr} if cidr else {}),
                     **({"taints": taints} if taints else {})},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else [],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown",
                                       "lastHeartbeatTime": heartbeat}]}}


def test_nodes_get_the_next_free_cidr_in_registration_order_and_keep_theirs():
    nodes = [_node("c", created="2026-01-03T00:00:00Z"), _node("a", "10.42.0.0/24"),
             _node("b", created="2026-01-02T00:00:00Z")]
    actions = nodeipam.assign(nodes, "10.42.0.0/16")
    got = {a.obj["metadata"]["name"]: a.obj["spec"]["podCIDR"] for a in actions}
    assert got == {"b": "10.42.1.0/24", "c": "10.42.2.0/24"}
    assert all(a.obj["spec"]["podCIDRs"] == [a.obj["spec"]["podCIDR"]] for a in actions)


def test_a_full_cluster_cidr_leaves_the_node_waiting():
    nodes = [_node("a", "10.42.0.0/24"), _node("b", "10.42.1.0/24"), _node("c")]
    assert nodeipam.assign(nodes, "10.42.0.0/23") == []


# -- node lifecycle -----------------------------------------------------------------------
S = Settings(grace=10, default_toleration=5)


def test_silence_is_measured_by_the_controllers_own_clock():
    seen = Observed()
    node = _node("h2", heartbeat=rfc3339(NOW - 3600))     # an old heartbeat: a restart
    assert seen.silent_for(node, None, NOW) == 0.0       # first sight: a full grace period
    assert seen.silent_for(node, None, NOW + 11) == 11
    lease = {"spec": {"renewTime": rfc3339(NOW + 12)}}
    assert seen.silent_for(node, lease, NOW + 12) == 0.0  # renewed
    seen.forget(set())
    assert seen.silent_for(node, lease, NOW + 50) == 0.0


def test_a_silent_node_is_tainted_then_marked_unknown():
    actions = reconcile_node(_node("h2"), 11, NOW, S)
    assert isinstance(actions[0], Update) and isinstance(actions[1], SetStatus)
    taint = actions[0].obj["spec"]["taints"][0]
    assert (taint["key"], taint["effect"], taint["timeAdded"]) == (
        UNREACHABLE_TAINT, "NoExecute", rfc3339(NOW))
    ready = actions[1].status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert reconcile_node(_node("h2"), 9, NOW, S) == []


def test_a_node_heard_again_and_ready_loses_the_taint():
    taint = {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": rfc3339(NOW)}
    other = {"key": "dedicated", "effect": "NoSchedule"}
    [update] = reconcile_node(_node("h2", taints=[taint, other]), 0, NOW, S)
    assert update.obj["spec"]["taints"] == [other]
    assert reconcile_node(_node("h2", taints=[taint], ready=False), 0, NOW, S) == []


def _pod(name, node, tolerations=None, deleting=False, ready=True):
    meta = {"name": name, "namespace": "default", "uid": f"u-{name}"}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta,
            "spec": {"nodeName": node, "tolerations": tolerations or []},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_pods_on_an_unreachable_node_turn_unready_at_once_and_go_after_their_toleration():
    taint = {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": rfc3339(NOW)}
    nodes = [_node("h2", taints=[taint]), _node("h1")]
    pods = [_pod("a", "h2"), _pod("b", "h1"),
            _pod("forever", "h2", [{"key": UNREACHABLE_TAINT, "operator": "Exists"}]),
            _pod("short", "h2", [{"key": UNREACHABLE_TAINT, "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 2}])]
    actions, due = reconcile_pods(nodes, pods, NOW + 1, S)
    unready = {a.key.name for a in actions if isinstance(a, SetStatus)}
    assert unready == {"a", "forever", "short"}
    assert not [a for a in actions if isinstance(a, Delete)]
    assert due == 1.0                   # "short" runs out first
    actions, due = reconcile_pods(nodes, pods, NOW + 5, S)
    assert {a.key.name for a in actions if isinstance(a, Delete)} == {"a", "short"}


def test_a_pod_that_names_the_taint_without_tolerating_it_goes_at_once():
    taint = {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": rfc3339(NOW)}
    pod = _pod("p", "h2", [{"key": UNREACHABLE_TAINT, "operator": "Equal", "value": "x",
                            "effect": "NoExecute"}])
    assert toleration_left(pod, taint, NOW, 300) == 0.0


def test_pods_of_a_deleted_node_are_removed_and_deleting_ones_left_alone():
    taint = {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": rfc3339(NOW)}
    actions, _ = reconcile_pods([_node("h2", taints=[taint])],
                                [_pod("gone", "h9"), _pod("old", "h2", deleting=True)],
                                NOW + 100, S)
    assert [(type(a).__name__, a.key.name) for a in actions] == [("Delete", "gone")]
