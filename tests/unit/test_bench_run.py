"""bench/run.py's contract, the pure part: the JSON holding exactly KEYS, no NaN, verdicts.
Running modules in child processes is tested in tests/integration/test_bench_run.py."""

from __future__ import annotations

import math

import pytest

from tests.bench_support import load_runner


@pytest.fixture(scope="module")
def runner():
    return load_runner()


def test_json_has_exactly_the_issue_keys_and_no_nan(runner, tmp_path):
    figures, _, errors = runner.run_all(runner.BENCHES, True, tmp_path)   # nothing there
    assert set(figures) == set(runner.KEYS) == {
        "validate_per_object_ms", "noop_sync_1000_objects_s", "noop_sync_10000_objects_s",
        "selfheal_desired_drift_s", "push_to_ready_s",
        "pod_start_overhead_ratio_vs_docker_run", "restart_after_kill_s",
        "proxy_rps_ratio_vs_docker_proxy", "proxy_p99_ratio_vs_docker_proxy",
        "agent_rss_mb_100_pods", "scaling_curves", "ui_first_paint_s",
        "ui_tree_500_objects_s", "cluster_push_to_ready_s",
        "cross_node_proxy_rps_ratio_vs_direct", "node_loss_to_replaced_s",
        "bulk_start_100_pods_ratio_vs_parallel_docker_run", "up_vs_compose_ratio_20_services",
        "scheduler_pods_per_s_1000_nodes", "scheduler_pods_per_s_1000_nodes_sqlite",
        "api_list_10000_pods_s", "api_list_10000_pods_s_sqlite", "server_rss_mb_10000_pods",
        "server_rss_mb_10000_pods_sqlite", "etcd_failover_s"}
    assert len(errors) == len(runner.BENCHES)
    assert runner.finite({"x": math.nan, "y": [math.inf, 1.0]}) == {"x": None, "y": [None, 1.0]}


@pytest.mark.parametrize("key,value,want", [
    ("validate_per_object_ms", 0.4, "met"), ("validate_per_object_ms", 0.6, "NOT met"),
    ("proxy_rps_ratio_vs_docker_proxy", 1.2, "met"),
    ("proxy_rps_ratio_vs_docker_proxy", 0.9, "NOT met"),
    ("agent_rss_mb_100_pods", None, ""), ("agent_rss_mb_100_pods", math.nan, ""),
    ("scaling_curves", [], ""),
])
def test_verdicts(runner, key, value, want):
    assert runner.verdict(key, value) == want
