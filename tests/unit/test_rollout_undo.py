"""`kubectl rollout undo` puts an older template back: the Deployment reuses that
ReplicaSet and, as Kubernetes does, gives it the next revision."""

import copy

from gitops.controllers import deployment
from gitops.controllers.base import Update

NOW = 1_800_000_000.0


def deploy(image):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 3},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def rs_for(d, replicas, revision):
    template = deployment.effective_template(d)
    thash = deployment.template_hash(template)
    rs = deployment.new_replicaset(d, template, f"web-{thash}", thash, replicas, revision)
    rs["metadata"]["uid"] = f"rs-{revision}"
    rs["status"] = {"replicas": replicas, "availableReplicas": replicas,
                    "readyReplicas": replicas}
    return rs


def revisions(actions):
    return {a.obj["metadata"]["name"]: a.obj["metadata"]["annotations"][deployment.REVISION]
            for a in actions if isinstance(a, Update) and a.obj["kind"] == "ReplicaSet"}


def test_undo_reuses_the_old_replicaset_as_the_newest_revision():
    v1, v2 = deploy("app:1"), deploy("app:2")
    old, current = rs_for(v1, 0, 1), rs_for(v2, 1, 2)
    undone = copy.deepcopy(v1)                      # the template kubectl patched back
    actions = deployment.reconcile(undone, [old, current], NOW)
    assert revisions(actions)[old["metadata"]["name"]] == "3"
    # once it is the newest, nothing more is bumped
    old["metadata"]["annotations"][deployment.REVISION] = "3"
    old["spec"]["replicas"] = 1
    current["spec"]["replicas"] = 0
    current["status"] = {"replicas": 0}
    assert revisions(deployment.reconcile(undone, [old, current], NOW)) == {}


def test_change_cause_follows_the_new_replicaset():
    d = deploy("app:2")
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "image app:2"}
    from gitops.controllers.base import Create
    [rs] = [a.obj for a in deployment.reconcile(d, [], NOW) if isinstance(a, Create)]
    assert rs["metadata"]["annotations"]["kubernetes.io/change-cause"] == "image app:2"
