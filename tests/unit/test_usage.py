"""The node's usage samples (pure parts and the sampler over a fake engine)."""

from __future__ import annotations

from gitops.agent.runtime import ContainerInfo
from gitops.agent.usage import Reading, UsageSampler, cpu_cores, reading


def stats(cpu_ns, usage, inactive=0, v2=False):
    extra = {"inactive_file": inactive} if v2 else {"total_inactive_file": inactive}
    return {"cpu_stats": {"cpu_usage": {"total_usage": cpu_ns}},
            "memory_stats": {"usage": usage, "stats": extra}}


def test_reading_takes_the_working_set():
    assert reading(stats(5, 1000, 300), 10.0) == Reading(5, 700, 10.0)
    assert reading(stats(5, 1000, 300, v2=True), 10.0) == Reading(5, 700, 10.0)
    assert reading({"cpu_stats": {}, "memory_stats": {}}, 1.0) is None    # stopped


def test_cpu_is_a_rate_between_readings_or_since_start():
    first = Reading(2_000_000_000, 0, 100.0)
    assert cpu_cores(None, first, started=96.0) == 0.5          # 2 s of CPU in 4 s
    later = Reading(3_000_000_000, 0, 110.0)
    assert cpu_cores(first, later, started=96.0) == 0.1         # 1 s in 10 s
    assert cpu_cores(None, first, started=None) == 0.0


def test_sampler_reports_running_pod_containers_only():
    def info(cid, container, state="running", uid="p1"):
        return ContainerInfo(cid, cid, {"gitops.pod.uid": uid, "gitops.container": container},
                             state, started_at="1970-01-01T00:01:30Z")
    containers = [info("a", "app"), info("s", "POD"), info("b", "side", "exited"),
                  info("c", "app", uid="p2")]
    counters = {"a": [stats(1_000_000_000, 100), stats(2_000_000_000, 200)],
                "c": [stats(0, 50), stats(0, 50)]}
    clock = iter([100.0, 100.0, 105.0, 105.0])
    sampler = UsageSampler(lambda: containers, lambda cid: counters[cid].pop(0),
                           clock=lambda: next(clock))
    assert sampler.pod_usage("p1") is None
    sampler.sample()
    assert sampler.pod_usage("p1") == {"app": {"cpu": 0.1, "memory": 100.0}}   # since start
    sampler.sample()
    assert sampler.pod_usage("p1") == {"app": {"cpu": 0.2, "memory": 200.0}}   # the rate
    assert sampler.pod_usage("p2") == {"app": {"cpu": 0.0, "memory": 50.0}}


def test_sampler_reads_only_the_pods_wanted():
    read = []
    info = ContainerInfo("a", "a", {"gitops.pod.uid": "p1", "gitops.container": "app"},
                         "running", started_at="1970-01-01T00:01:30Z")
    other = ContainerInfo("b", "b", {"gitops.pod.uid": "p2", "gitops.container": "app"},
                          "running", started_at="1970-01-01T00:01:30Z")
    wanted: set[str] = set()
    listed = []

    def containers():
        listed.append(1)
        return [info, other]

    sampler = UsageSampler(containers, lambda cid: read.append(cid) or stats(0, 1),
                           clock=lambda: 100.0, wanted=lambda: wanted)
    sampler.sample()
    assert read == [] and listed == []          # no autoscaler: the engine is not asked
    wanted.add("p2")
    sampler.sample()
    assert read == ["b"] and sampler.pod_usage("p1") is None
