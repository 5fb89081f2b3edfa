"""Every benchmark in one go, on the local engine: one table, optionally one JSON file.

    python bench/run.py [--quick] [--json OUT] [--only validate,scale,...]

Each bench module exposes `run(quick: bool = False) -> dict` (the interface agreed in
bench/README.md); this script runs each in its own Python process (isolated memory,
logging set-up and environment, and a time limit), collects the figures, prints them
against the targets, and with --json writes exactly the keys in KEYS. A module that fails,
times out or lacks run() leaves its keys null and is named in the table and on stderr;
the exit status is then 1. Traffic only to loopback and the project's own containers.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Bench:
    name: str                 # short name for --only
    module: str               # bench/<module>.py
    keys: tuple[str, ...]     # figures it must return
    extra: tuple[str, ...] = ()   # optional details shown in the table, not in the JSON
    timeout: float = 600      # seconds, full run
    quick_timeout: float = 300
    needs: str = ""           # a Debian package whose binary must be on PATH


# Cheap CPU-bound ones first, the proxy last (it is the most sensitive to noise).
BENCHES = (
    Bench("validate", "validate_bench", ("validate_per_object_ms",), timeout=300,
          quick_timeout=120),
    Bench("sync", "sync_bench", ("noop_sync_1000_objects_s", "noop_sync_10000_objects_s"),
          timeout=300, quick_timeout=150),
    Bench("ui", "ui_bench", ("ui_first_paint_s", "ui_tree_500_objects_s"),
          ("ui_tree_500_server_render_s", "ui_tree_500_live_refresh_s", "ui_live_update_s"),
          timeout=300,
          quick_timeout=120, needs="chromium"),
    Bench("selfheal", "selfheal_bench", ("selfheal_desired_drift_s",), timeout=300,
          quick_timeout=150),
    Bench("scale", "scale_bench", ("scaling_curves",), timeout=1200, quick_timeout=300),
    Bench("agent", "agent_bench", ("push_to_ready_s", "pod_start_overhead_ratio_vs_docker_run",
                                   "restart_after_kill_s"), timeout=900, quick_timeout=240),
    Bench("bulk", "bulk_bench", ("bulk_start_100_pods_ratio_vs_parallel_docker_run",
                                 "up_vs_compose_ratio_20_services"), timeout=900,
          quick_timeout=240, needs="docker-compose"),
    Bench("memory", "memory_bench", ("agent_rss_mb_100_pods",), ("memory_100_pods",),
          timeout=900, quick_timeout=420),
    Bench("control-plane", "control_plane_bench",
          ("scheduler_pods_per_s_1000_nodes", "scheduler_pods_per_s_1000_nodes_sqlite",
           "api_list_10000_pods_s", "api_list_10000_pods_s_sqlite",
           "server_rss_mb_10000_pods", "server_rss_mb_10000_pods_sqlite", "etcd_failover_s"),
          ("control_plane_scale",), timeout=3000, quick_timeout=240),
    Bench("proxy", "proxy_vs_docker", ("proxy_rps_ratio_vs_docker_proxy",
                                       "proxy_p99_ratio_vs_docker_proxy"), ("proxy_table",),
          timeout=900, quick_timeout=240, needs="wrk"),
    # Three simulated hosts (root: network namespaces, one dockerd each); issue 19.
    Bench("cluster", "cluster_bench", ("cluster_push_to_ready_s",
                                       "cross_node_proxy_rps_ratio_vs_direct",
                                       "node_loss_to_replaced_s"),
          ("cross_node_direct_rps", "cross_node_clusterip_rps", "cross_node_pair_ratios",
           "cluster_push_rounds_s"),
          timeout=600, quick_timeout=200),
)
KEYS = tuple(k for b in BENCHES for k in b.keys)
QUICK_BUDGET = 570     # seconds: --quick must end within 10 minutes, reporting included
MIN_SLOT = 20          # a module given less than this is skipped, not started

# (comparison, bound) per figure, from issue 9 (and 15).
TARGETS = {
    "validate_per_object_ms": ("<=", 0.5),
    "noop_sync_1000_objects_s": ("<=", 1.0),
    "noop_sync_10000_objects_s": ("<=", 0.3),        # issue 16
    "selfheal_desired_drift_s": ("<=", 3.0),         # issue 16
    "push_to_ready_s": ("<=", 3.0),
    "pod_start_overhead_ratio_vs_docker_run": ("<=", 1.5),
    "restart_after_kill_s": ("<=", 1.0),
    "proxy_rps_ratio_vs_docker_proxy": (">=", 1.0),
    "proxy_p99_ratio_vs_docker_proxy": ("<=", 1.0),
    "agent_rss_mb_100_pods": ("<=", 120.0),
    # issue 15
    "bulk_start_100_pods_ratio_vs_parallel_docker_run": ("<=", 1.5),
    "up_vs_compose_ratio_20_services": ("<=", 1.2),
    "ui_first_paint_s": ("<=", 1.0),                 # issue 21
    "ui_tree_500_objects_s": ("<=", 1.0),            # issue 21: "without lag"
    "cluster_push_to_ready_s": ("<=", 2.0),                  # issue 19
    "cross_node_proxy_rps_ratio_vs_direct": (">=", 0.7),
    "node_loss_to_replaced_s": ("<=", 20.0),
    "scheduler_pods_per_s_1000_nodes": (">=", 300.0),         # issue 20 (etcd, and SQLite)
    "scheduler_pods_per_s_1000_nodes_sqlite": (">=", 300.0),
    "api_list_10000_pods_s": ("<=", 2.0),
    "api_list_10000_pods_s_sqlite": ("<=", 2.0),
    "server_rss_mb_10000_pods": ("<=", 800.0),
    "server_rss_mb_10000_pods_sqlite": ("<=", 800.0),
    "etcd_failover_s": ("<=", 15.0),
}


class MissingInterface(RuntimeError):
    pass


def load_run(module: str, bench_dir: Path = HERE):
    """bench/<module>.py's run(quick), or MissingInterface saying what is missing.
    Imported under its own name from bench_dir on sys.path, so a module that spawns
    processes (multiprocessing pickles functions by module name) works as a script does."""
    if not (bench_dir / f"{module}.py").exists():
        raise MissingInterface(f"bench/{module}.py does not exist")
    sys.path.insert(0, str(bench_dir))
    mod = importlib.import_module(module)
    fn = getattr(mod, "run", None)
    if not callable(fn):
        raise MissingInterface(f"bench/{module}.py has no run(quick: bool = False) -> dict yet "
                               "(the benchmark interface in bench/README.md)")
    return fn


def child(module: str, quick: bool, out: Path, bench_dir: Path = HERE) -> int:
    """Runs in the child process: call the module's run() and write its figures to `out`."""
    # stop() interrupts a child past its time with SIGINT so its `finally` cleans up: a run
    # started in the background (`&`, nohup) inherits SIGINT ignored, and would not hear it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, str(ROOT))
    try:
        result = load_run(module, bench_dir)(quick=quick)
    except MissingInterface as exc:
        out.write_text(json.dumps({"error": str(exc)}))
        return 3
    if not isinstance(result, dict):
        out.write_text(json.dumps({"error": f"bench/{module}.py run() returned "
                                            f"{type(result).__name__}, not a dict"}))
        return 3
    out.write_text(json.dumps(result, default=float))
    return 0


def ensure_binary(package: str) -> str:
    """Install a Debian package whose binary is missing (wrk); '' when it is there."""
    if shutil.which(package):
        return ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{package} is missing and cannot be installed here: apt-get install -y {package}"
    print(f"installing Debian's {package} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-q", package],
                ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        subprocess.run(cmd, env=env, capture_output=True, timeout=300)
        if shutil.which(package):
            return ""
    return f"apt-get install -y {package} failed"


def has_run(module: str, bench_dir: Path = HERE) -> str:
    """'' when bench/<module>.py defines run() at top level, else what is missing (read
    with ast, so nothing is installed for a module that cannot run yet)."""
    path = bench_dir / f"{module}.py"
    if not path.exists():
        return f"bench/{module}.py does not exist"
    tree = ast.parse(path.read_text(), str(path))
    if any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body):
        return ""
    return (f"bench/{module}.py has no run(quick: bool = False) -> dict yet "
            "(the benchmark interface in bench/README.md)")


def run_bench(bench: Bench, quick: bool, bench_dir: Path = HERE,
              limit: float | None = None) -> tuple[dict, str]:
    """Run one module in a child process with a time limit: (figures, error or '')."""
    if problem := has_run(bench.module, bench_dir):
        return {}, problem
    if bench.needs and (problem := ensure_binary(bench.needs)):
        return {}, problem
    limit = min(limit or math.inf, bench.quick_timeout if quick else bench.timeout)
    with tempfile.TemporaryDirectory(prefix="gitops-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--child", bench.module, "--out", str(out),
               "--bench-dir", str(bench_dir)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        proc = subprocess.Popen(cmd + (["--quick"] if quick else []), cwd=ROOT, env=env,
                                start_new_session=True)
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            stop(proc)
            return {}, f"timed out after {limit:.0f}s"
        data = json.loads(out.read_text()) if out.exists() else {}
    if "error" in data and len(data) == 1:
        return {}, data["error"]
    if proc.returncode != 0:
        return {}, f"exited with status {proc.returncode} (its output is above)"
    missing = [k for k in bench.keys if k not in data]
    return data, (f"run() did not return {', '.join(missing)}" if missing else "")


def stop(proc: subprocess.Popen) -> None:
    """SIGINT first, so the module's `finally` removes what it created; then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 90), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def verdict(key: str, value) -> str:
    if key not in TARGETS or not isinstance(value, (int, float)) or math.isnan(value):
        return ""
    op, bound = TARGETS[key]
    return "met" if (value <= bound if op == "<=" else value >= bound) else "NOT met"


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def print_report(figures: dict, details: dict, errors: dict, quick: bool,
                 elapsed: float) -> None:
    load = os.getloadavg()
    print(f"\ngitops benchmarks ({'quick' if quick else 'full'}), {os.cpu_count()} cpus, "
          f"load {load[0]:.2f}, python {sys.version.split()[0]}, {elapsed:.0f}s\n")
    print(f"{'figure':<42} {'value':>10}  {'target':<8} {'':<8}")
    for key in KEYS:
        if key == "scaling_curves":
            continue
        op, bound = TARGETS.get(key, ("", ""))
        print(f"{key:<42} {fmt(figures.get(key)):>10}  {op + ' ' + str(bound):<8} "
              f"{verdict(key, figures.get(key))}")
    if figures.get("scaling_curves"):
        print(f"\nscaling curve (one process per point)\n{'objects':>8} {'first sync s':>13} "
              f"{'no-op sync s':>13} {'no-op ms/obj':>13} {'peak RSS MB':>12} {'store MB':>9}")
        for p in figures["scaling_curves"]:
            print(f"{p['objects']:>8} {p['first_sync_s']:>13.3f} {p['noop_sync_s']:>13.3f} "
                  f"{p['noop_sync_s'] * 1e3 / p['objects']:>13.3f} {p['peak_rss_mb']:>12.1f} "
                  f"{p.get('store_mb', float('nan')):>9.1f}")
    if table := details.get("proxy_table"):
        print_proxy_table(table)
    if mem := details.get("memory_100_pods"):
        print(f"\n{mem['pods']} pods Ready in {mem['converge_s']:.1f}s; agent RSS "
              f"{mem['rss_idle_mb']:.1f} MB with no pods, {mem['rss_mb']:.1f} MB with them "
              f"(peak {mem['rss_peak_mb']:.1f} MB)")
    if other := details.get("other"):
        print("\nalongside (not targets)")
        for key, value in other.items():
            print(f"  {key:<40} {fmt(value):>10}")
    for name, error in errors.items():
        print(f"\n{name}: {error}")


def print_proxy_table(table: dict) -> None:
    """{path: {metric: value}} with the direct connection first (it is the limit)."""
    paths = sorted(table, key=lambda p: ("direct", "docker-proxy", "gitops").index(p)
                   if p in ("direct", "docker-proxy", "gitops") else 9)
    metrics = list(dict.fromkeys(m for p in paths if isinstance(table[p], dict)
                                 for m in table[p]))
    print(f"\nproxy (wrk; direct is the limit)\n{'metric':<24}" +
          "".join(f"{p:>14}" for p in paths))
    for m in metrics:
        print(f"{m:<24}" + "".join(f"{fmt(table[p].get(m)):>14}" for p in paths))


def finite(value):
    """NaN and infinities become null: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def run_all(benches, quick: bool, bench_dir: Path = HERE,
            budget: float | None = None) -> tuple[dict, dict, dict]:
    """(figures under KEYS, details for the table, module -> error) for these benches,
    all within `budget` seconds when given (each module's limit shrinks to what is left)."""
    deadline = time.monotonic() + budget if budget else math.inf
    figures: dict = {k: None for k in [*KEYS, *(k for b in benches for k in b.keys)]}
    details: dict = {}
    errors: dict = {}
    for bench in benches:
        print(f"== {bench.module}", flush=True)
        t0 = time.monotonic()
        left = deadline - t0
        if left < MIN_SLOT:
            data, error = {}, f"skipped: the {budget:.0f}s budget of the run is spent"
        else:
            data, error = run_bench(bench, quick, bench_dir, left)
        print(f"== {bench.module}: {'failed: ' + error if error else 'done'} "
              f"({time.monotonic() - t0:.0f}s)", flush=True)
        if error:
            errors[bench.module] = error
            print(f"bench/{bench.module}.py: {error}", file=sys.stderr)
        figures.update({k: data[k] for k in bench.keys if k in data})
        details.update({k: data[k] for k in bench.extra if k in data})
        details.setdefault("other", {}).update(
            {k: v for k, v in data.items() if k not in bench.keys and k not in bench.extra
             and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return figures, details, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the short version (under 10 min)")
    ap.add_argument("--json", metavar="OUT", help="write the figures to this file")
    ap.add_argument("--only", default="", help="comma-separated: " +
                    ",".join(b.name for b in BENCHES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--bench-dir", default=str(HERE), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.quick, Path(args.out), Path(args.bench_dir))
    wanted = set(filter(None, args.only.split(",")))
    unknown = wanted - {b.name for b in BENCHES}
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    os.environ.setdefault("DOCKER_HOST", "unix:///run/gitops-docker/docker.sock")
    # The package as installed is measured, and an install is byte-compiled (pip compiles
    # what it copies; scripts/setup.sh compiles the editable tree): a tree installed by hand
    # with `pip install -e .` would time Python compiling our modules in every command.
    import compileall
    compileall.compile_dir(str(HERE.parent / "gitops"), quiet=1)
    start = time.monotonic()
    figures, details, errors = run_all([b for b in BENCHES if not wanted or b.name in wanted],
                                       args.quick, budget=QUICK_BUDGET if args.quick else None)
    print_report(figures, details, errors, args.quick, time.monotonic() - start)
    if args.json:
        Path(args.json).write_text(json.dumps(finite(figures), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
