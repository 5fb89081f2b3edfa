"""scripts/etcd.sh: a 1- or 3-member etcd on loopback, stopped and cleaned even after a
crash (members left running by a killed test run)."""

from __future__ import annotations

import json
import os
import time
import urllib.request

from tests.etcd_support import EtcdCluster, free_port_run, need_etcd


def _health(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{endpoint}/health", timeout=2) as resp:
            return json.loads(resp.read())["health"] == "true"
    except OSError:
        return False


def _healthy_within(endpoint: str, seconds: float) -> bool:
    """Health needs a leader: if the killed member led, the others elect one first."""
    deadline = time.monotonic() + seconds
    while not _health(endpoint):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _pids(cluster: EtcdCluster) -> list[int]:
    return [int((cluster.dir / f"m{n}.pid").read_text()) for n in range(cluster.members)
            if (cluster.dir / f"m{n}.pid").exists()]


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and "etcd" in open(f"/proc/{pid}/comm").read()


def test_three_members_start_answer_and_stop_clean(tmp_path):
    need_etcd()
    cluster = EtcdCluster(tmp_path / "etcd", 3, free_port_run(6))
    try:
        assert cluster.start().url == "etcd://" + ",".join(cluster.endpoints)
        assert all(_health(e) for e in cluster.endpoints)
        cluster.kill(1)                       # chaos: one member down, the others serve
        assert not _health(cluster.endpoint(1))
        assert _healthy_within(cluster.endpoint(0), 20)
        cluster.start_member(1)               # it rejoins with its own data
        pids = _pids(cluster)
        assert len(pids) == 3
    finally:
        cluster.stop()
    assert not cluster.dir.exists()
    assert not any(_alive(p) for p in pids)


def test_a_crashed_runs_members_are_stopped_by_the_next_start_and_by_stop(tmp_path):
    need_etcd()
    port = free_port_run(2)
    first = EtcdCluster(tmp_path / "etcd", 1, port).start()
    leftover = _pids(first)                   # the run "crashes": nothing stops it
    again = EtcdCluster(tmp_path / "etcd", 1, port)
    try:
        again.start()                         # same dir and port: the old member is gone
        assert not any(_alive(p) for p in leftover)
        assert _health(again.endpoint(0))
        survivor = _pids(again)
    finally:
        again.stop()
    assert not any(_alive(p) for p in survivor)
    again.stop()                              # stopping twice is fine
