"""Pod spec fields the node cannot honour are named (gitops validate and the API warn);
fields it honours are not."""

from __future__ import annotations

import pytest

from gitops.manifests import policy
from gitops.manifests.loader import load_text
from gitops.model.unhonoured import unhonoured


@pytest.mark.parametrize("spec, path, fragment", [
    ({"priorityClassName": "high"}, "priorityClassName", "priority and preemption"),
    ({"runtimeClassName": "gvisor"}, "runtimeClassName", "runtime classes"),
    ({"readinessGates": [{"conditionType": "x"}]}, "readinessGates", "not evaluated"),
    ({"shareProcessNamespace": True}, "shareProcessNamespace", "process namespace"),
    ({"schedulingGates": [{"name": "g"}]}, "schedulingGates", "scheduled at once"),
    ({"imagePullSecrets": [{"name": "reg"}]}, "imagePullSecrets", "docker login"),
    ({"hostUsers": False}, "hostUsers", "user namespaces"),
    ({"os": {"name": "windows"}}, "os.name", "will not start"),
    ({"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}},
     "securityContext.sysctls", "not applied"),
    ({"securityContext": {"seLinuxOptions": {"level": "s0"}}},
     "securityContext.seLinuxOptions", "SELinux"),
    ({"containers": [{"name": "a", "securityContext": {"seccompProfile": {
        "type": "Localhost", "localhostProfile": "p.json"}}}]},
     "containers[0].securityContext.seccompProfile", "will not start"),
    ({"containers": [{"name": "a", "resizePolicy": [{"resourceName": "cpu"}]}]},
     "containers[0].resizePolicy", "in-place resize"),
    ({"containers": [{"name": "a", "lifecycle": {"stopSignal": "SIGUSR1"}}]},
     "containers[0].lifecycle.stopSignal", "STOPSIGNAL"),
    ({"initContainers": [{"name": "a", "resources": {"limits": {"ephemeral-storage": "1Gi"}}}]},
     "initContainers[0].resources.limits.ephemeral-storage", "not enforced"),
    ({"containers": [{"name": "a", "volumeMounts": [
        {"name": "v", "mountPath": "/v", "mountPropagation": "HostToContainer"}]}]},
     "containers[0].volumeMounts[0].mountPropagation", "mount propagation"),
    ({"volumes": [{"name": "v", "csi": {"driver": "x"}}]}, "volumes[0].csi", "will not start"),
    ({"volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}]},
     "volumes[0].emptyDir.sizeLimit", "not enforced"),
    ({"volumes": [{"name": "v", "projected": {"sources": [{"clusterTrustBundle": {}}]}}]},
     "volumes[0].projected.sources[0].clusterTrustBundle", "will not start"),
])
def test_each_field_the_node_cannot_honour_is_named(spec, path, fragment):
    found = dict(unhonoured(spec))
    assert list(found) == [path]
    assert fragment in found[path]


def test_what_the_node_honours_is_not_named():
    spec = {
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}], "dnsPolicy": "None",
        "dnsConfig": {"nameservers": ["1.1.1.1"]}, "activeDeadlineSeconds": 30,
        "automountServiceAccountToken": False, "hostUsers": True, "os": {"name": "linux"},
        "securityContext": {"runAsNonRoot": True, "fsGroup": 2000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{"name": "side", "restartPolicy": "Always"}],
        "containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                        "lifecycle": {"postStart": {"exec": {"command": ["true"]}}},
                        "terminationMessagePath": "/dev/termination-log",
                        "volumeMounts": [{"name": "v", "mountPath": "/v",
                                          "mountPropagation": "None"}],
                        "securityContext": {"readOnlyRootFilesystem": True,
                                            "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "v", "projected": {"sources": [
            {"serviceAccountToken": {"path": "t"}}, {"configMap": {"name": "c"}}]}},
            {"name": "e", "emptyDir": {"medium": "Memory"}}],
    }
    assert list(unhonoured(spec)) == []


def test_warnings_carry_file_line_and_the_full_field_path():
    text = ("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n"
            "  schedule: '0 1 * * *'\n  jobTemplate:\n    spec:\n      template:\n"
            "        spec:\n          priorityClassName: low\n"
            "          containers: [{name: a, image: x}]\n")
    (warning,) = policy.warnings(load_text(text, "cron.yaml").objects)
    assert str(warning) == ("cron.yaml:10: CronJob/nightly: "
                            "spec.jobTemplate.spec.template.spec.priorityClassName: not "
                            "honoured by this node: pod priority and preemption are not "
                            "implemented")


def test_the_api_admits_such_a_pod_with_a_warning_kubectl_shows():
    from gitops.api.kube.registry import lookup
    from gitops.api.kube.validation import check
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"priorityClassName": "high", "containers": [{"name": "a", "image": "x"}]}}
    outcome = check(lookup("", "v1", "pods"), pod, "Strict", False)
    assert outcome.warnings == ["spec.priorityClassName: not honoured by this node: pod "
                                "priority and preemption are not implemented"]
