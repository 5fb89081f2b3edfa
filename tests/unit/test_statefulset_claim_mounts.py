"""A StatefulSet's pods mount its volumeClaimTemplates by name: not an undeclared volume."""

from gitops.manifests.checks import check_pod_references


def sts(mounts: list[str]) -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"template": {"spec": {"containers": [{
                "name": "db", "image": "x",
                "volumeMounts": [{"name": m, "mountPath": f"/{m}"} for m in mounts]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}


def test_a_claim_template_is_a_volume_of_the_pods_and_nothing_else_is():
    assert list(check_pod_references(sts(["data"]))) == []
    assert [p for p, _ in check_pod_references(sts(["data", "nope"]))] == [
        "spec.template.spec.containers[0].volumeMounts[1].name"]
