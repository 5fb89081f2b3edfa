"""bench/run.py's contract: every module in its own process, a clear error for a module
without run(), failures and time-outs contained, the JSON holding exactly KEYS."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


MODULES = {
    "good": "def run(quick=False):\n    return {'a': 1.5, 'b': 2 if quick else 3, 'note': 'x'}\n",
    "norun": "RUN = None\n",
    "boom": "def run(quick=False):\n    raise RuntimeError('boom')\n",
    "partial": "def run(quick=False):\n    return {'a': 1.0}\n",
    "notdict": "def run(quick=False):\n    return [1]\n",
    "slow": "import time\ndef run(quick=False):\n    time.sleep(120)\n",
}


def test_modules_run_isolated_and_failures_are_named(runner, tmp_path, capsys):
    for name, text in MODULES.items():
        (tmp_path / f"{name}.py").write_text(text)
    B = runner.Bench
    benches = [B("good", "good", ("a", "b")), B("norun", "norun", ("c",)),
               B("boom", "boom", ("d",)), B("partial", "partial", ("a", "e")),
               B("notdict", "notdict", ("f",)), B("slow", "slow", ("g",), quick_timeout=3),
               B("gone", "gone", ("h",))]
    figures, details, errors = runner.run_all(benches, True, tmp_path)
    assert figures["b"] == 2                                # quick reached the module
    assert details["other"] == {}                           # 'note' is not a number
    assert set(errors) == {"norun", "boom", "partial", "notdict", "slow", "gone"}
    assert "has no run(quick: bool = False) -> dict yet" in errors["norun"]
    assert "exited with status" in errors["boom"]
    assert errors["partial"] == "run() did not return e"
    assert "not a dict" in errors["notdict"]
    assert errors["slow"] == "timed out after 3s"
    assert "does not exist" in errors["gone"]
    assert all(figures[k] is None for k in "cdefgh")


def test_json_has_exactly_the_issue_keys_and_no_nan(runner, tmp_path):
    figures, _, errors = runner.run_all(runner.BENCHES, True, tmp_path)   # nothing there
    assert set(figures) == set(runner.KEYS) == {
        "validate_per_object_ms", "noop_sync_1000_objects_s", "push_to_ready_s",
        "pod_start_overhead_ratio_vs_docker_run", "restart_after_kill_s",
        "proxy_rps_ratio_vs_docker_proxy", "proxy_p99_ratio_vs_docker_proxy",
        "agent_rss_mb_100_pods", "scaling_curves"}
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


def test_a_run_budget_shrinks_time_limits_and_skips_what_no_longer_fits(runner, tmp_path):
    (tmp_path / "slow.py").write_text(MODULES["slow"])
    (tmp_path / "good.py").write_text(MODULES["good"])
    B = runner.Bench
    benches = [B("slow", "slow", ("g",)), B("good", "good", ("a", "b"))]
    figures, _, errors = runner.run_all(benches, True, tmp_path, budget=25)
    assert errors["slow"] == "timed out after 25s"          # its own limit is 300 s
    assert errors["good"].startswith("skipped: the 25s budget")
    assert figures["a"] is None
