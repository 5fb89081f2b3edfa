"""DefaultTolerationSeconds follows the server's --default-unreachable-toleration-seconds,
for admission and for the sync's diff alike (a cluster's tests shorten it)."""

from gitops.admission import defaults


def pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"},
            "spec": {"containers": [{"name": "a", "image": "x"}]}}


def seconds(obj: dict) -> set:
    return {t["tolerationSeconds"] for t in obj["spec"]["tolerations"]}


def test_pods_get_the_configured_toleration_for_unreachable_and_not_ready_nodes():
    try:
        defaults.set_default_toleration_seconds(5)
        shortened = defaults.with_defaults(pod())
    finally:
        defaults.set_default_toleration_seconds(defaults.TOLERATION_SECONDS)
    assert seconds(shortened) == {5}
    assert {t["key"] for t in shortened["spec"]["tolerations"]} == set(
        defaults.NODE_CONDITION_TAINTS)
    assert seconds(defaults.with_defaults(pod())) == {300}
