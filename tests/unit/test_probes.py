"""Probe state machine (fake clock, table-driven) and run_probe's non-network paths."""

from __future__ import annotations

import errno
import threading

import pytest

from gitops.agent.prober import ProbeWorker, run_probe
from gitops.agent.probes import ProbeResults, ProbeTracker, Timing, resolve_port, timing

START = 1000.0
UID = "u1"


class Clock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ctr(**probes) -> dict:
    return {"name": "app", "image": "img:1",
            **{f"{kind}Probe": {"exec": {"command": ["true"]}, **p} for kind, p in probes.items()}}


# Each step: (seconds after start, kind, act, expected (started, live, ready) or None).
# act: "-" = not due; "ok"/"fail" = due, and that outcome is recorded; "?" = only look.
T = True
F = False
CASES = {
    "no probes: all true, nothing due": (ctr(), [
        (0, "liveness", "-", (T, T, T)), (0, "readiness", "-", None),
        (0, "startup", "-", (T, T, T))]),
    "initial delay counts from container start": (ctr(liveness={"initialDelaySeconds": 5}), [
        (0, "liveness", "-", None), (4.9, "liveness", "-", None),
        (5, "liveness", "ok", (T, T, T))]),
    "period between runs (default 10 s)": (ctr(liveness={}), [
        (0, "liveness", "ok", None), (9.9, "liveness", "-", None), (10, "liveness", "ok", None),
        (15, "liveness", "-", None), (20, "liveness", "ok", None)]),
    "custom period": (ctr(readiness={"periodSeconds": 2}), [
        (0, "readiness", "ok", None), (1, "readiness", "-", None), (2, "readiness", "ok", None)]),
    "liveness fails after failureThreshold (default 3) consecutive failures": (
        ctr(liveness={"periodSeconds": 1}), [
            (0, "liveness", "fail", (T, T, T)), (1, "liveness", "fail", (T, T, T)),
            (2, "liveness", "fail", (T, F, T)),
            (3, "liveness", "-", (T, F, T))]),   # no more runs until the restart
    "a success resets the failure count": (ctr(liveness={"periodSeconds": 1,
                                                         "failureThreshold": 2}), [
        (0, "liveness", "fail", None), (1, "liveness", "ok", None),
        (2, "liveness", "fail", (T, T, T)), (3, "liveness", "fail", (T, F, T))]),
    "liveness successThreshold is forced to 1": (ctr(liveness={"successThreshold": 3,
                                                               "failureThreshold": 1}), [
        (0, "liveness", "ok", (T, T, T))]),
    "readiness: not ready until successThreshold successes": (
        ctr(readiness={"periodSeconds": 1, "successThreshold": 2, "failureThreshold": 2}), [
            (0, "readiness", "?", (T, T, F)),   # nothing run yet: not ready
            (0, "readiness", "ok", (T, T, F)), (1, "readiness", "ok", (T, T, T)),
            (2, "readiness", "fail", (T, T, T)), (3, "readiness", "fail", (T, T, F)),
            (4, "readiness", "ok", (T, T, F)), (5, "readiness", "ok", (T, T, T))]),
    "readiness failures never kill": (ctr(readiness={"periodSeconds": 1,
                                                     "failureThreshold": 1}), [
        (0, "readiness", "fail", (T, T, F)), (1, "readiness", "fail", (T, T, F))]),
    "startup gates liveness and readiness until it succeeds": (
        ctr(startup={"periodSeconds": 1}, liveness={"periodSeconds": 1}, readiness={}), [
            (0, "liveness", "-", (F, T, F)), (0, "readiness", "-", None),
            (0, "startup", "fail", (F, T, F)), (1, "liveness", "-", None),
            (1, "startup", "ok", (T, T, F)),
            (1, "liveness", "ok", None), (1, "readiness", "ok", (T, T, T)),
            (5, "startup", "-", None)]),   # a succeeded startup probe never runs again
    "startup without readiness: ready once started": (ctr(startup={}), [
        (0, "readiness", "-", (F, T, F)), (0, "startup", "ok", (T, T, T))]),
    "startup failing failureThreshold times kills": (
        ctr(startup={"periodSeconds": 1, "failureThreshold": 2}, liveness={}), [
            (0, "startup", "fail", (F, T, F)), (1, "startup", "fail", (F, F, F)),
            (2, "startup", "-", None), (2, "liveness", "-", None)]),
}


@pytest.mark.parametrize("container,steps", CASES.values(), ids=list(CASES))
def test_tracker_table(container, steps):
    clock = Clock()
    tracker = ProbeTracker(clock)
    for offset, kind, act, expected in steps:
        clock.t = START + offset
        due = act != "?" and tracker.due(UID, container, START, kind)
        assert due == (act not in "-?"), (offset, kind, act)
        if due:
            tracker.record(UID, "app", kind, act == "ok", f"{kind} {act}")
        if expected is not None:
            r = tracker.results(UID, "app", container)
            assert (r.started, r.live, r.ready) == expected, (offset, kind, act)


@pytest.mark.parametrize("container,expected", [
    (ctr(), (T, T, T)), (ctr(liveness={}), (T, T, T)), (ctr(readiness={}), (T, T, F)),
    (ctr(startup={}), (F, T, F)), (None, (T, T, T))])
def test_results_before_the_first_due_come_from_the_spec(container, expected):
    r = ProbeTracker(Clock()).results(UID, "app", container)
    assert (r.started, r.live, r.ready) == expected


def test_failure_message_names_the_probe():
    clock = Clock()
    tracker = ProbeTracker(clock)
    c = ctr(liveness={"failureThreshold": 1}, startup={"failureThreshold": 1})
    assert tracker.due(UID, c, START, "startup")
    tracker.record(UID, "app", "startup", False, "exit 1")
    r = tracker.results(UID, "app")
    assert (r.failure, r.failed_probe) == ("Startup probe failed: exit 1", "startup")
    tracker.reset(UID, "app")
    for kind in ("startup", "liveness"):
        assert tracker.due(UID, c, START, kind)
        tracker.record(UID, "app", kind, kind == "startup", "HTTP probe failed with statuscode: 500")
    r = tracker.results(UID, "app")
    assert not r.live and r.failed_probe == "liveness"
    assert r.failure == "Liveness probe failed: HTTP probe failed with statuscode: 500"
    assert r.messages["liveness"] == "HTTP probe failed with statuscode: 500"


def test_reset_on_restart_starts_over_with_initial_delay():
    clock = Clock()
    tracker = ProbeTracker(clock)
    c = ctr(liveness={"initialDelaySeconds": 3, "failureThreshold": 1})
    clock.t = START + 3
    assert tracker.due(UID, c, START, "liveness")
    tracker.record(UID, "app", "liveness", False, "down")
    assert not tracker.results(UID, "app").live
    tracker.reset(UID, "app")
    assert tracker.results(UID, "app") == ProbeResults()
    restarted = START + 10
    clock.t = restarted + 2.9
    assert not tracker.due(UID, c, restarted, "liveness")
    clock.t = restarted + 3
    assert tracker.due(UID, c, restarted, "liveness")
    assert tracker.results(UID, "app").live


def test_new_start_time_resets_without_an_explicit_reset():
    """An agent that restarted adopts running containers; a changed StartedAt means the
    container restarted behind its back."""
    clock = Clock()
    tracker = ProbeTracker(clock)
    c = ctr(liveness={"failureThreshold": 1})
    assert tracker.due(UID, c, START, "liveness")
    tracker.record(UID, "app", "liveness", False, "down")
    clock.t = START + 50
    assert tracker.due(UID, c, START + 50, "liveness")
    assert tracker.results(UID, "app").live


def test_stale_results_are_dropped():
    clock = Clock()
    tracker = ProbeTracker(clock)
    c = ctr(liveness={"failureThreshold": 1})
    tracker.record(UID, "app", "liveness", False, "never asked")     # not due: ignored
    assert tracker.due(UID, c, START, "liveness")
    tracker.reset(UID, "app")                                         # restarted meanwhile
    tracker.record(UID, "app", "liveness", False, "old run")
    assert tracker.results(UID, "app").live
    clock.t = START + 20
    assert tracker.due(UID, c, START + 20, "liveness")
    tracker.record(UID, "app", "liveness", False, "old run", started_at=START)
    assert tracker.results(UID, "app").live
    tracker.record(UID, "app", "liveness", False, "this run", started_at=START + 20)
    assert not tracker.results(UID, "app").live


def test_not_due_again_while_in_flight():
    clock = Clock()
    tracker = ProbeTracker(clock)
    c = ctr(readiness={"periodSeconds": 1})
    assert tracker.due(UID, c, START, "readiness")
    clock.t = START + 5          # a slow probe: longer than its period
    assert not tracker.due(UID, c, START, "readiness")
    tracker.record(UID, "app", "readiness", True, "")
    assert tracker.due(UID, c, START, "readiness")


def test_forget_drops_only_that_pod():
    tracker = ProbeTracker(Clock())
    c = ctr(readiness={})
    for uid in ("a", "b"):
        assert tracker.due(uid, c, START, "readiness")
        tracker.record(uid, "app", "readiness", True, "")
    tracker.forget("a")
    assert tracker.results("a", "app") == ProbeResults()      # unknown: as without probes
    assert tracker.results("b", "app").ready
    assert not tracker.due("b", c, START, "readiness")         # its schedule survived


@pytest.mark.parametrize("probe,kind,expected", [
    ({}, "liveness", Timing(0, 10, 1, 1, 3)),
    ({"periodSeconds": 0, "timeoutSeconds": 0, "failureThreshold": 0}, "readiness",
     Timing(0, 10, 1, 1, 3)),
    ({"initialDelaySeconds": 4, "periodSeconds": 2, "timeoutSeconds": 3,
      "successThreshold": 2, "failureThreshold": 5}, "readiness", Timing(4, 2, 3, 2, 5)),
    ({"successThreshold": 2}, "liveness", Timing(success_threshold=1)),
    ({"successThreshold": 2}, "startup", Timing(success_threshold=1)),
])
def test_timing_defaults(probe, kind, expected):
    assert timing(probe, kind) == expected


# -- run_probe without the network -----------------------------------------------------
WEB = {"name": "web", "ports": [{"name": "http", "containerPort": 8080},
                                {"name": "metrics", "containerPort": 9090}]}


@pytest.mark.parametrize("port,expected", [
    (80, 80), ("http", 8080), ("metrics", 9090), ("8081", 8081),
    ("nope", ValueError), (0, ValueError), (70000, ValueError)])
def test_resolve_port(port, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            resolve_port(port, WEB)
    else:
        assert resolve_port(port, WEB) == expected


def fake_exec(code=0, out=b"", raises=None, calls=None):
    def run(cid, cmd, timeout):
        if calls is not None:
            calls.append((cid, cmd, timeout))
        if raises:
            raise raises
        return code, out
    return run


@pytest.mark.parametrize("probe,exec_fn,ok,message", [
    ({"exec": {"command": ["cat", "/ok"]}}, fake_exec(0, b"fine\n"), True, "fine"),
    ({"exec": {"command": ["false"]}}, fake_exec(1), False, "command exited with code 1"),
    ({"exec": {"command": ["sh"]}}, fake_exec(2, b"not ready\n"), False, "not ready"),
    ({"exec": {"command": ["sleep", "5"]}}, fake_exec(raises=TimeoutError()), False,
     'command "sleep 5" timed out'),                  # the kubelet's words
    ({"exec": {"command": ["x"]}}, fake_exec(raises=RuntimeError("container gone")), False,
     "RuntimeError: container gone"),
    ({"grpc": {"port": 9090}}, fake_exec(), False, "grpc probes are not supported"),
    ({}, fake_exec(), False, "probe has no handler (httpGet, tcpSocket or exec)"),
    ({"httpGet": {"port": 80}}, fake_exec(), False, "ValueError: the pod has no IP yet"),
    ({"tcpSocket": {"port": "nope"}}, fake_exec(), False,
     "ValueError: port 'nope' is not a named port of the container"),
])
def test_run_probe_without_network(probe, exec_fn, ok, message):
    pod_ip = "" if "httpGet" in probe else "10.213.250.9"
    assert run_probe(probe, pod_ip, WEB, "cid", exec_fn) == (ok, message)


@pytest.mark.parametrize("handler", ["httpGet", "tcpSocket"])
def test_other_hosts_are_never_probed(handler):
    ok, message = run_probe({handler: {"host": "192.0.2.1", "port": 80}}, "10.213.250.9",
                            WEB, "cid", fake_exec())
    assert not ok and "refused" in message and "192.0.2.1" in message


def test_exec_gets_command_and_timeout():
    calls = []
    run_probe({"exec": {"command": ["cat", "/tmp/healthy"]}, "timeoutSeconds": 4}, "",
              WEB, "cid-1", fake_exec(calls=calls))
    assert calls == [("cid-1", ["cat", "/tmp/healthy"], 4.0)]


def test_worker_runs_due_probes_off_thread_and_wakes_on_a_verdict_change():
    clock = Clock()
    tracker = ProbeTracker(clock)
    woke = threading.Event()
    release = threading.Event()
    running, finished = threading.Event(), threading.Event()

    def slow_exec(cid, cmd, timeout):
        running.set()
        release.wait(5)
        finished.set()
        return 0, b""

    worker = ProbeWorker(tracker, slow_exec, wake=woke.set)
    try:
        c = ctr(readiness={})
        worker.run_due(UID, "10.213.250.9", c, "cid", START)
        assert not finished.is_set()                     # never blocks the caller
        assert running.wait(5)                           # the probe runs on a worker thread
        assert not tracker.results(UID, "app").ready
        worker.run_due(UID, "10.213.250.9", c, "cid", START)   # in flight: not resubmitted
        release.set()
        assert woke.wait(5)
        assert tracker.results(UID, "app").ready
    finally:
        worker.close()


@pytest.mark.parametrize("exc, message", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
     "dial tcp 10.0.0.5:4200: connect: connection refused"),
    (TimeoutError(), "dial tcp 10.0.0.5:4200: i/o timeout"),
    (OSError(errno.EHOSTUNREACH, "No route to host"),
     "dial tcp 10.0.0.5:4200: connect: no route to host"),
])
def test_connect_errors_read_like_the_kubelets(exc, message):
    from gitops.agent.prober import _dial_error
    assert _dial_error(exc, "10.0.0.5", 4200) == message
