"""bench/run.py's contract, with child processes: every module in its own process, a clear
error for a module without run(), failures and time-outs contained, a budget for the run."""

from __future__ import annotations

import signal

import pytest

from tests.bench_support import load_runner


@pytest.fixture(scope="module")
def runner():
    return load_runner()


MODULES = {
    "good": "def run(quick=False):\n    return {'a': 1.5, 'b': 2 if quick else 3, 'note': 'x'}\n",
    "norun": "RUN = None\n",
    "boom": "def run(quick=False):\n    raise RuntimeError('boom')\n",
    "partial": "def run(quick=False):\n    return {'a': 1.0}\n",
    "notdict": "def run(quick=False):\n    return [1]\n",
    "slow": ("import pathlib, time\ndef run(quick=False):\n    try:\n        time.sleep(120)\n"
             "    finally:\n        pathlib.Path(__file__).with_name('slow.cleaned').touch()\n"),
}


def test_modules_run_isolated_and_failures_are_named(runner, tmp_path, capsys):
    for name, text in MODULES.items():
        (tmp_path / f"{name}.py").write_text(text)
    B = runner.Bench
    benches = [B("good", "good", ("a", "b")), B("norun", "norun", ("c",)),
               B("boom", "boom", ("d",)), B("partial", "partial", ("a", "e")),
               B("notdict", "notdict", ("f",)), B("slow", "slow", ("g",), quick_timeout=3),
               B("gone", "gone", ("h",))]
    # as in a run started in the background (`&`, nohup): SIGINT ignored, and inherited
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        figures, details, errors = runner.run_all(benches, True, tmp_path)
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert (tmp_path / "slow.cleaned").exists()             # interrupted, its finally ran
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


def test_a_run_budget_shrinks_time_limits_and_skips_what_no_longer_fits(runner, tmp_path):
    (tmp_path / "slow.py").write_text(MODULES["slow"])
    (tmp_path / "good.py").write_text(MODULES["good"])
    B = runner.Bench
    benches = [B("slow", "slow", ("g",)), B("good", "good", ("a", "b"))]
    figures, _, errors = runner.run_all(benches, True, tmp_path, budget=25)
    assert errors["slow"] == "timed out after 25s"          # its own limit is 300 s
    assert errors["good"].startswith("skipped: the 25s budget")
    assert figures["a"] is None
