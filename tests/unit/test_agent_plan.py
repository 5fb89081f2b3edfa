import pytest

from gitops.agent import plan as P
from gitops.agent.env import build_env, expand
from gitops.agent.runtime import CONFIG_HASH, CONTAINER, POD_UID, SANDBOX, ContainerInfo, RuntimeFailure
from gitops.agent.status import pod_status

NOW = 1_000_000.0


def ts(t: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(containers=None, policy="Always", deleting=False):
    meta = {"name": "p", "namespace": "default", "uid": "u1"}
    if deleting:
        meta["deletionTimestamp"] = ts(NOW)
    return {"metadata": meta, "spec": {"restartPolicy": policy, "nodeName": "n",
                                       "containers": containers or [{"name": "app", "image": "img:1"}]}}


def ctr(name, state="running", exit_code=0, started=NOW - 100, finished=NOW - 1, spec=None,
        cid=None, ip=""):
    labels = {CONTAINER: name, POD_UID: "u1"}
    if spec is not None:
        labels[CONFIG_HASH] = P.container_hash(spec)
    return ContainerInfo(id=cid or f"id-{name}", name=name, labels=labels, state=state,
                         exit_code=exit_code, started_at=ts(started), finished_at=ts(finished),
                         ip=ip)


APP = {"name": "app", "image": "img:1"}
SANDBOX_OK = ctr(SANDBOX, ip="10.0.0.2")


def kinds(plan):
    return [type(a).__name__ for a in plan.actions]


def compute(p, containers, images=None, failures=None, restarts=None, now=NOW):
    return P.compute_pod_actions(p, containers, images if images is not None else {"img:1": True},
                                 failures or {}, restarts or {}, now)


SIDE = {"name": "side", "image": "img:1"}


def test_a_pod_of_one_container_is_that_container_holding_the_network():
    plan = compute(pod(), [])
    assert kinds(plan) == ["RunContainer"] and plan.actions[0].holds_network


@pytest.mark.parametrize("spec", [
    {"containers": [APP, SIDE]},
    {"containers": [APP], "initContainers": [{"name": "init", "image": "img:1"}]},
    {"containers": [APP], "hostNetwork": True},
], ids=["two containers", "init container", "host network"])
def test_pods_that_share_a_namespace_get_a_sandbox_first(spec):
    p = pod()
    p["spec"].update(spec)
    plan = compute(p, [])
    assert kinds(plan)[0] == "RunSandbox"
    assert not any(getattr(a, "holds_network", False) for a in plan.actions)


def test_a_pod_started_with_a_sandbox_keeps_it():
    """Pods made before single-container pods lost their sandbox are left as they are."""
    assert compute(pod(), [SANDBOX_OK, ctr("app", spec=APP)]).actions == []
    plan = compute(pod(), [SANDBOX_OK])
    assert kinds(plan) == ["RunContainer"] and not plan.actions[0].holds_network


def test_a_lone_container_that_died_is_restarted_not_replaced():
    plan = compute(pod(), [ctr("app", state="exited", exit_code=1, spec=APP)])
    assert kinds(plan) == ["Restart"]


def test_pod_ip_of_a_lone_container_survives_between_runs():
    from gitops.agent.runtime import POD_IP
    lone = ctr("app", spec=APP, ip="10.1.0.130")
    pinned = ContainerInfo(**{**lone.__dict__, "labels": {**lone.labels, POD_IP: "10.1.0.130"}})
    assert P.pod_ip(pod()["spec"], [pinned]) == "10.1.0.130"
    stopped = ContainerInfo(**{**pinned.__dict__, "state": "exited", "ip": ""})
    assert P.pod_ip(pod()["spec"], [stopped]) == "10.1.0.130"       # CrashLoopBackOff keeps it
    dead_sandbox = ctr(SANDBOX, state="exited")
    assert P.pod_ip(pod()["spec"], [dead_sandbox, lone]) == ""      # the sandbox's, gone
    assert P.pod_ip(pod()["spec"], [SANDBOX_OK, lone]) == "10.0.0.2"


def test_running_pod_needs_nothing():
    assert compute(pod(), [SANDBOX_OK, ctr("app", spec=APP)]).actions == []


def test_dead_sandbox_recreates_everything():
    plan = compute(pod(), [ctr(SANDBOX, state="exited"), ctr("app", spec=APP)])
    assert kinds(plan) == ["Remove", "Remove", "RunSandbox", "RunContainer"]


def test_spec_change_recreates_container():
    old = ctr("app", spec={"name": "app", "image": "img:0"})
    assert kinds(compute(pod(), [SANDBOX_OK, old])) == ["Remove", "RunContainer"]


def test_unknown_container_is_removed():
    plan = compute(pod(), [SANDBOX_OK, ctr("app", spec=APP), ctr("stray")])
    assert kinds(plan) == ["Remove"] and plan.actions[0].container_id == "id-stray"


@pytest.mark.parametrize("policy, code, restart", [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False),
    ("OnFailure", 2, True), ("Never", 1, False)])
def test_restart_policy(policy, code, restart):
    plan = compute(pod(policy=policy), [SANDBOX_OK, ctr("app", "exited", code, spec=APP)])
    assert (kinds(plan) == ["Restart"]) == restart


@pytest.mark.parametrize("restarts, ran_for, delay", [
    (0, 5, 0), (1, 5, 10), (2, 5, 20), (3, 5, 40), (10, 5, 300), (6, 700, 0)])
def test_restart_backoff_curve(restarts, ran_for, delay):
    assert P.restart_delay(restarts, ran_for) == delay


def test_backoff_starts_over_after_ten_minutes_of_running():
    long_run = ctr("app", "exited", 1, started=NOW - 700, finished=NOW - 1, spec=APP)
    [restart] = compute(pod(), [SANDBOX_OK, long_run], restarts={"app": 9}).actions
    assert restart == P.Restart(long_run.id, "app", backoff_reset=True)   # at once
    short = ctr("app", "exited", 1, started=NOW - 6, finished=NOW - 5, spec=APP)
    assert compute(pod(), [SANDBOX_OK, short], restarts={"app": 9}).actions == []  # 300 s
    # 10 restarts in all, the reset at the 10th: the curve counts from there (10 s, not 300)
    counted = P.backoff_restarts({"app": 11}, {"app": 10})
    assert counted == {"app": 1} and P.restart_delay(counted["app"], 5) == 10
    waiting = compute(pod(), [SANDBOX_OK, short], restarts=counted)
    assert waiting.actions == [] and "back-off 10s" in waiting.waiting["app"][1]


def test_crash_loop_waits_then_restarts():
    crashed = ctr("app", "exited", 1, started=NOW - 6, finished=NOW - 5, spec=APP)
    waiting = compute(pod(), [SANDBOX_OK, crashed], restarts={"app": 2})
    assert waiting.actions == [] and waiting.waiting["app"][0] == "CrashLoopBackOff"
    later = compute(pod(), [SANDBOX_OK, crashed], restarts={"app": 2}, now=NOW + 20)
    assert kinds(later) == ["Restart"]


def test_missing_image_is_pulled_and_failures_back_off():
    plan = compute(pod(), [SANDBOX_OK], images={"img:1": False})
    assert kinds(plan) == ["Pull", "RunContainer"]
    failure = P.PullFailure(NOW - 5, 1, "ErrImagePull", "no such host")
    plan = compute(pod(), [SANDBOX_OK], images={"img:1": False}, failures={"img:1": failure})
    assert plan.actions == [] and plan.waiting["app"][0] == "ImagePullBackOff"
    plan = compute(pod(), [SANDBOX_OK], images={"img:1": False}, failures={"img:1": failure},
                   now=NOW + 10)
    assert kinds(plan) == ["Pull", "RunContainer"]


def test_never_policy_does_not_pull():
    p = pod(containers=[{"name": "app", "image": "img:1", "imagePullPolicy": "Never"}])
    plan = compute(p, [SANDBOX_OK], images={"img:1": False})
    assert plan.actions == [] and plan.waiting["app"][0] == "ErrImageNeverPull"


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1", "IfNotPresent"),
    ("reg:5000/x", "Always"), ("reg:5000/x:2", "IfNotPresent")])
def test_default_pull_policy(image, policy):
    assert P.pull_policy({"image": image}) == policy


def test_deleting_pod_drains_apps_before_sandbox_then_finalizes():
    p = pod(deleting=True)
    assert kinds(compute(p, [SANDBOX_OK, ctr("app", spec=APP)])) == ["Stop"]
    assert kinds(compute(p, [SANDBOX_OK])) == ["Remove"]
    assert kinds(compute(p, [])) == ["Finalize"]


def test_status_running_ready_with_pod_ip():
    st = pod_status(pod(), [SANDBOX_OK, ctr("app", spec=APP)], {}, {"app": 1}, {}, "10.0.0.1")
    assert st["phase"] == "Running" and st["podIP"] == "10.0.0.2"
    assert {"type": "Ready", "status": "True"} in st["conditions"]
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["restartCount"] == 1 and "running" in cs["state"]


def test_status_waiting_reason_and_phase():
    st = pod_status(pod(), [SANDBOX_OK], {"app": ("ErrImagePull", "nope")}, {}, {}, "")
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ErrImagePull", "message": "nope"}}
    assert {"type": "Ready", "status": "False"} in st["conditions"]


@pytest.mark.parametrize("policy, code, phase", [
    ("Never", 0, "Succeeded"), ("Never", 3, "Failed"), ("OnFailure", 0, "Succeeded")])
def test_status_terminal_phases(policy, code, phase):
    st = pod_status(pod(policy=policy), [SANDBOX_OK, ctr("app", "exited", code, spec=APP)],
                    {}, {}, {}, "")
    assert st["phase"] == phase
    assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == code


def test_env_sources_and_expansion():
    cm = {"kind": "ConfigMap", "data": {"A": "1", "B": "2"}}
    secret = {"kind": "Secret", "data": {"PW": "c2VjcmV0"}}
    objects = {("ConfigMap", "cfg"): cm, ("Secret", "sec"): secret}
    p = pod()
    p["status"] = {"podIP": "10.0.0.9"}
    container = {"name": "app", "image": "x", "envFrom": [{"configMapRef": {"name": "cfg"},
                                                          "prefix": "CM_"}],
                 "env": [{"name": "X", "value": "x-$(CM_A)-$$(CM_A)-$(NOPE)"},
                         {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PW"}}},
                         {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                         {"name": "OPT", "valueFrom": {"configMapKeyRef": {
                             "name": "none", "key": "k", "optional": True}}}]}
    env = build_env(p, container, lambda kind, ns, name: objects.get((kind, name)))
    assert env["CM_A"] == "1" and env["CM_B"] == "2" and env["PW"] == "secret"
    assert env["X"] == "x-1-$(CM_A)-$(NOPE)" and env["IP"] == "10.0.0.9" and "OPT" not in env
    assert env["HOSTNAME"] == "p"
    with pytest.raises(RuntimeFailure) as err:
        build_env(p, {"env": [{"name": "Y", "valueFrom": {"configMapKeyRef": {
            "name": "missing", "key": "k"}}}]}, lambda *a: None)
    assert err.value.reason == "CreateContainerConfigError"
    assert expand("$(A) $(B)", {"A": "a"}) == "a $(B)"


INIT_A = {"name": "init-a", "image": "img:1"}
INIT_B = {"name": "init-b", "image": "img:1"}


def pod_with_inits(policy="Always"):
    p = pod(policy=policy)
    p["spec"]["initContainers"] = [INIT_A, INIT_B]
    return p


def test_init_containers_run_in_order_before_apps():
    p = pod_with_inits()
    assert [a.container["name"] for a in compute(p, [SANDBOX_OK]).actions] == ["init-a"]
    running = compute(p, [SANDBOX_OK, ctr("init-a", spec=INIT_A)])
    assert running.actions == []
    first_done = [SANDBOX_OK, ctr("init-a", "exited", 0, spec=INIT_A)]
    assert [a.container["name"] for a in compute(p, first_done).actions] == ["init-b"]
    both_done = first_done + [ctr("init-b", "exited", 0, spec=INIT_B)]
    assert [a.container["name"] for a in compute(p, both_done).actions] == ["app"]


def test_failed_init_container_retries_with_backoff_and_blocks_apps():
    p = pod_with_inits()
    failed = [SANDBOX_OK, ctr("init-a", "exited", 1, started=NOW - 3, finished=NOW - 2,
                              spec=INIT_A)]
    plan = compute(p, failed, restarts={"init-a": 1})
    assert plan.actions == [] and plan.waiting["init-a"][0] == "CrashLoopBackOff"
    assert kinds(compute(p, failed, restarts={"init-a": 1}, now=NOW + 20)) == ["Restart"]
    never = compute(pod_with_inits("Never"), failed)
    assert never.actions == []
    st = pod_status(pod_with_inits("Never"), failed, {}, {}, {}, "")
    assert st["phase"] == "Failed"
    assert {"type": "Initialized", "status": "False"} in st["conditions"]


def test_status_reports_init_containers_and_pending_phase():
    p = pod_with_inits()
    st = pod_status(p, [SANDBOX_OK, ctr("init-a", "exited", 0, spec=INIT_A),
                        ctr("init-b", spec=INIT_B)], {}, {}, {}, "")
    assert st["phase"] == "Pending"
    assert [s["ready"] for s in st["initContainerStatuses"]] == [True, False]
    from gitops.model.pods import pod_display_status
    assert pod_display_status({"metadata": {}, "status": st}) == "Init:1/2"


def test_apps_existing_means_initialised_even_without_init_containers_left():
    p = pod_with_inits()
    assert compute(p, [SANDBOX_OK, ctr("app", spec=APP)]).actions == []


LIMITED = {"name": "app", "image": "img:1",
           "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}


@pytest.mark.parametrize("state, cpus, memory, replaced", [
    ("running", 500_000_000, 64 * 2**20, False),   # as asked
    ("running", None, None, False),                # the runtime does not say: trust it
    ("paused", 500_000_000, 64 * 2**20, True),     # `docker pause`
    ("running", 500_000_000, 128 * 2**20, True),   # `docker update --memory`
    ("running", 0, 64 * 2**20, True),              # `docker update --cpus 0`
])
def test_a_container_changed_behind_the_agents_back_is_replaced(state, cpus, memory, replaced):
    from dataclasses import replace
    live = replace(ctr("app", state, spec=LIMITED), nano_cpus=cpus, memory=memory)
    plan = compute(pod([LIMITED]), [SANDBOX_OK, live])
    assert kinds(plan) == (["Remove", "RunContainer"] if replaced else [])
    if replaced:
        assert "outside the agent" in plan.actions[0].why


def test_a_container_hash_is_the_same_before_and_after_the_api_server_defaults_it():
    """A pod stored before defaults were filled in keeps its running containers when a
    later write fills them in."""
    from gitops.admission.defaults import with_defaults
    pod = {"kind": "Pod", "spec": {"containers": [{
        "name": "app", "image": "gitops/busybox:1", "ports": [{"containerPort": 80}],
        "readinessProbe": {"httpGet": {"port": 80}},
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}]}}
    raw = pod["spec"]["containers"][0]
    defaulted = with_defaults(pod)["spec"]["containers"][0]
    assert defaulted != raw and P.container_hash(defaulted) == P.container_hash(raw)
    changed = {**defaulted, "imagePullPolicy": "Always"}     # not the default: a change
    assert P.container_hash(changed) != P.container_hash(raw)
