"""A container's security context as the engine takes it, and runAsNonRoot (pure)."""

from __future__ import annotations

import pytest

from gitops.agent import security
from gitops.agent.runtime import RuntimeFailure
from gitops.model.podspec import host_access


def pod(pod_sc: dict | None = None, **container_sc) -> tuple[dict, dict]:
    c = {"name": "app", "image": "img:1", "securityContext": container_sc}
    return ({"metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
             "spec": {"securityContext": pod_sc or {}, "containers": [c]}}, c)


@pytest.mark.parametrize("pod_sc, sc, want", [
    ({}, {}, security.Security()),
    ({}, {"capabilities": {"drop": ["ALL"], "add": ["net_bind_service"]}},
     security.Security(cap_add=("NET_BIND_SERVICE",), cap_drop=("ALL",))),
    ({}, {"capabilities": {"add": ["CAP_CHOWN"]}}, security.Security(cap_add=("CHOWN",))),
    ({}, {"allowPrivilegeEscalation": False},
     security.Security(security_opt=("no-new-privileges:true",))),
    ({}, {"allowPrivilegeEscalation": True}, security.Security()),
    ({"seccompProfile": {"type": "RuntimeDefault"}}, {}, security.Security()),
    ({"seccompProfile": {"type": "Unconfined"}}, {"seccompProfile": {"type": "RuntimeDefault"}},
     security.Security()),
    ({}, {"seccompProfile": {"type": "Unconfined"}},
     security.Security(security_opt=("seccomp=unconfined",))),
    ({"runAsUser": 1000, "runAsGroup": 3, "fsGroup": 2000, "supplementalGroups": [4, 2000]},
     {"readOnlyRootFilesystem": True},
     security.Security(user="1000:3", groups=("2000", "4"), read_only=True)),
])
def test_the_engine_gets_what_the_context_says(pod_sc, sc, want):
    p, c = pod(pod_sc, **sc)
    assert security.security(p, c) == want


def test_a_localhost_seccomp_profile_is_refused_as_when_the_kubelet_cannot_load_it():
    p, c = pod({}, seccompProfile={"type": "Localhost", "localhostProfile": "x.json"})
    with pytest.raises(RuntimeFailure) as caught:
        security.security(p, c)
    assert caught.value.reason == "CreateContainerConfigError" and "x.json" in str(caught.value)


WHERE = '(pod: "web_shop(u1)", container: app)'


@pytest.mark.parametrize("pod_sc, sc, image_user, message", [
    ({}, {}, "", None),                                   # no runAsNonRoot: anything goes
    ({"runAsNonRoot": True}, {}, "", f"image will run as root {WHERE}"),
    ({"runAsNonRoot": True}, {}, "0:0", f"image will run as root {WHERE}"),
    ({"runAsNonRoot": True}, {}, "root", "image has non-numeric user (root), cannot verify"),
    ({"runAsNonRoot": True}, {}, "1000:1000", None),
    ({"runAsNonRoot": True}, {"runAsUser": 1000}, "", None),      # the image is not asked
    ({}, {"runAsNonRoot": True, "runAsUser": 0}, "",
     f"container's runAsUser breaks non-root policy {WHERE}"),
    ({"runAsNonRoot": True}, {"runAsNonRoot": False}, "", None),  # the container's wins
])
def test_run_as_non_root_is_checked_as_the_kubelet_does(pod_sc, sc, image_user, message):
    p, c = pod(pod_sc, **sc)
    if message is None:
        security.verify_non_root(p, c, image_user)
        return
    with pytest.raises(RuntimeFailure) as caught:
        security.verify_non_root(p, c, image_user)
    assert message in str(caught.value) and caught.value.reason == "CreateContainerConfigError"


def test_the_image_is_asked_only_when_no_run_as_user_answers_it():
    assert security.needs_image_user(*pod({"runAsNonRoot": True}))
    assert not security.needs_image_user(*pod({"runAsNonRoot": True}, runAsUser=5))
    assert not security.needs_image_user(*pod({}))


@pytest.mark.parametrize("sc, refused", [
    ({"capabilities": {"add": ["NET_BIND_SERVICE", "chown", "NET_RAW"]}}, []),
    ({"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}},
     ["containers[0].securityContext.capabilities.add[0]"]),
    ({"capabilities": {"add": ["cap_net_admin", "ALL"]}},
     ["containers[0].securityContext.capabilities.add[0]",
      "containers[0].securityContext.capabilities.add[1]"]),
    ({"seccompProfile": {"type": "Unconfined"}},
     ["containers[0].securityContext.seccompProfile.type"]),
    ({"capabilities": {"add": "SYS_ADMIN"}}, []),     # a type error: validation says so
])
def test_capabilities_beyond_the_baseline_are_host_access(sc, refused):
    p, _ = pod({}, **sc)
    assert [path for path, _ in host_access(p["spec"])] == refused
