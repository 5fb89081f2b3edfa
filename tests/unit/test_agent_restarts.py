"""Restart bookkeeping and what a failed action leaves on a pod (pure)."""

from __future__ import annotations

import pytest

from gitops.agent import plan as P
from gitops.agent.failures import FailureBook, containers_failed_by
from gitops.agent.restarts import PodRestarts, RestartBook
from gitops.model.times import rfc3339

T0 = 1_700_000_000.0


def terminated(finished: float, code: int = 1) -> dict:
    return {"exitCode": code, "reason": "Error", "startedAt": rfc3339(finished - 5),
            "finishedAt": rfc3339(finished)}


def pod(uid: str = "u1", statuses: list[dict] | None = None) -> dict:
    return {"metadata": {"name": "p", "namespace": "default", "uid": uid},
            "spec": {"initContainers": [{"name": "init"}],
                     "containers": [{"name": "app"}, {"name": "side"}]},
            "status": {"containerStatuses": statuses or []}}


# -- seeding -----------------------------------------------------------------------------
@pytest.mark.parametrize("statuses, counts, last_states", [
    ([], {}, {}),
    ([{"name": "app"}], {"app": 0}, {"app": {}}),
    ([{"name": "app", "restartCount": 3, "lastState": {"terminated": terminated(T0)}},
      {"name": "side", "restartCount": 1, "lastState": None}],
     {"app": 3, "side": 1}, {"app": {"terminated": terminated(T0)}, "side": {}}),
])
def test_counts_and_last_states_are_seeded_from_status(statuses, counts, last_states):
    book = RestartBook().seed(pod(statuses=statuses))
    assert (book.counts, book.last_states) == (counts, last_states)
    assert book.backoff_base == {} and book.previous_since == {}


def test_a_pod_is_seeded_once_then_the_book_is_the_truth():
    restarts = RestartBook()
    restarts.seed(pod(statuses=[{"name": "app", "restartCount": 2}])).restarted(
        "app", terminated(T0))
    again = restarts.seed(pod(statuses=[{"name": "app", "restartCount": 0}]))
    assert again.counts == {"app": 3} and restarts.of("u1") is again


# -- restarts ----------------------------------------------------------------------------
@pytest.mark.parametrize("seeded, before, reset, count, base, since", [
    # first restart of a new container: no earlier run to start its previous logs after
    ({}, None, False, 1, {}, 0.0),
    # the previous run began when the run before it finished
    ({"restartCount": 4, "lastState": {"terminated": terminated(T0 - 60)}}, None, False,
     5, {}, T0 - 60),
    # it ran ten minutes: its back-off starts over from the count before this restart
    ({"restartCount": 4}, None, True, 5, {"app": 4}, 0.0),
])
def test_a_restart(seeded, before, reset, count, base, since):
    book = PodRestarts.from_status({"containerStatuses": [{"name": "app", **seeded}]})
    assert book.restarted("app", terminated(T0), reset) == count
    assert book.counts["app"] == count
    assert book.last_states["app"] == {"terminated": terminated(T0)}
    assert book.backoff_base == base and book.previous_since == {"app": since}


@pytest.mark.parametrize("counts, base, expected", [
    ({"app": 3}, {}, {"app": 3}),
    ({"app": 7, "side": 1}, {"app": 6}, {"app": 1, "side": 1}),
])
def test_backoff_counts_only_restarts_since_the_last_reset(counts, base, expected):
    assert PodRestarts(counts=counts, backoff_base=base).backoff_counts() == expected


def test_back_to_back_restarts_shift_the_previous_run_window():
    book = PodRestarts()
    book.restarted("app", terminated(T0))
    book.restarted("app", terminated(T0 + 30))
    assert book.counts == {"app": 2} and book.previous_since == {"app": T0}
    assert book.last_states["app"] == {"terminated": terminated(T0 + 30)}


# -- previous run's logs -----------------------------------------------------------------
@pytest.mark.parametrize("since, started_at, expected", [
    (T0, "", T0 + 0.000001),                  # just after the run before it finished
    (0.0, rfc3339(T0), None),                 # its first run: from the start
    (None, rfc3339(T0), T0 - 1.0),            # forgotten (agent restart): a second early
    (None, "", None),
    (None, "0001-01-01T00:00:00Z", None),     # Docker's "never"
])
def test_previous_run_since(since, started_at, expected):
    restarts = RestartBook()
    book = restarts.seed(pod())
    if since is not None:
        book.previous_since["app"] = since
    assert restarts.previous_run_since("u1", "app", started_at) == expected


def test_previous_run_since_of_an_unknown_pod():
    assert RestartBook().previous_run_since("nope", "app", rfc3339(T0)) == T0 - 1.0


def test_forget_drops_pods_no_longer_on_the_node():
    restarts = RestartBook()
    for uid in ("u1", "u2", "u3"):
        restarts.seed(pod(uid))
    assert restarts.forget({"u2"}) == ["u1", "u3"]
    assert "u2" in restarts and "u1" not in restarts
    with pytest.raises(KeyError):
        restarts.of("u1")


# -- failures ----------------------------------------------------------------------------
APP = {"name": "app", "image": "i:1"}


@pytest.mark.parametrize("action, names", [
    (P.RunContainer(APP), ["app"]),
    (P.RunSandbox(), ["app", "side"]),              # a lost sandbox holds up the whole pod
    (P.Restart("c1", "side"), ["side"]),
    (P.Kill("c1", "app", 30.0, "Liveness probe failed"), ["app"]),
    (P.Pull("i:1"), []),
    (P.Remove("c1", "spec changed"), []),
    (P.Finalize(), []),
])
def test_containers_failed_by(action, names):
    assert containers_failed_by(action, pod()) == names


@pytest.mark.parametrize("pod_failed, planned, action_failed, expected", [
    (False, {}, {}, {}),
    (False, {"app": ("ContainerCreating", "")}, {}, {"app": ("ContainerCreating", "")}),
    (True, {}, {},                                   # a failed pass: every container
     {n: ("CreateContainerConfigError", "boom") for n in ("init", "app", "side")}),
    (True, {"app": ("CrashLoopBackOff", "back-off")}, {"side": ("RunContainerError", "no")},
     {"init": ("CreateContainerConfigError", "boom"), "app": ("CrashLoopBackOff", "back-off"),
      "side": ("RunContainerError", "no")}),
    (False, {"app": ("ContainerCreating", "")}, {"app": ("RunContainerError", "no")},
     {"app": ("RunContainerError", "no")}),          # a failed action wins
])
def test_waiting_reasons_for_status(pod_failed, planned, action_failed, expected):
    book = FailureBook()
    if pod_failed:
        book.pod_failed("u1", "CreateContainerConfigError", "boom")
    for name, (reason, message) in action_failed.items():
        book.action_failed("u1", [name], reason, message)
    assert book.waiting(pod(), planned) == expected


def test_failures_clear_when_things_go_right():
    book = FailureBook()
    book.pod_failed("u1", "CreateContainerConfigError", "boom")
    book.action_failed("u1", ["app", "side"], "RunContainerError", "no")
    book.pod_synced("u1")
    book.container_started("u1", "app")
    assert book.waiting(pod(), {}) == {"side": ("RunContainerError", "no")}
    book.forget(set())
    assert book.waiting(pod(), {}) == {}


def test_pull_failures_count_attempts_until_a_pull_succeeds():
    book = FailureBook()
    assert book.pull_failed("i:1", T0, "ErrImagePull", "denied") == \
        P.PullFailure(T0, 1, "ErrImagePull", "denied")
    assert book.pull_failed("i:1", T0 + 10, "ErrImagePull", "again").attempts == 2
    book.forget(set())                       # per image, not per pod: kept
    assert book.pulls["i:1"].attempts == 2
    book.pulled("i:1")
    assert book.pulls == {}
