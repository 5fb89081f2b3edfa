"""Scaling curves: sync time and memory at 100 / 1,000 / 10,000 objects.

    python bench/scale_bench.py [--counts 100,1000,10000] [--rounds 1]

Each point runs in a fresh Python process (so the peak RSS is that point's own, not the
largest one so far): a first sync that creates every object, then a no-op re-sync, on a
plain directory of manifests and a real SQLite store. No Docker involved: this is the cost
of the GitOps half (render, validate, diff, apply), which is what grows with repo size.
`run(quick)` returns {"scaling_curves": [{objects, first_sync_s, noop_sync_s, ...}]}.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COUNTS = (100, 1000, 10000)
PER_FILE = 50           # objects per YAML file, as a real repo splits them

# Four kinds in turn, so the mix resembles an application repo.
TEMPLATES = (
    """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, namespace: ns-{ns}, labels: {{app: app-{i}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers:
        - name: main
          image: gitops/busybox:1
          command: ["sh", "-c", "exec httpd -f -p 8080"]
          ports: [{{containerPort: 8080, name: http}}]
          env: [{{name: INDEX, value: "{i}"}}]
          resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{memory: 64Mi}}}}
""",
    """\
apiVersion: v1
kind: Service
metadata: {{name: app-{i}, namespace: ns-{ns}}}
spec:
  selector: {{app: app-{i}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
""",
    """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg-{i}, namespace: ns-{ns}}}
data: {{key: "value-{i}", other: "x", nested.conf: "a = 1\\nb = 2\\n"}}
""",
    """\
apiVersion: v1
kind: Secret
metadata: {{name: sec-{i}, namespace: ns-{ns}}}
type: Opaque
stringData: {{password: "pw-{i}"}}
""",
)
NAMESPACES = 5


def write_repo(root: Path, count: int) -> None:
    """`count` objects in files of PER_FILE, plus the namespaces they live in."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "namespaces.yaml").write_text("".join(
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{n}}}\n---\n"
        for n in range(NAMESPACES)))
    for start in range(0, count, PER_FILE):
        docs = [TEMPLATES[i % len(TEMPLATES)].format(i=i, ns=i % NAMESPACES, replicas=i % 3 + 1)
                for i in range(start, min(count, start + PER_FILE))]
        (root / f"objects-{start:05d}.yaml").write_text("---\n".join(docs))


def measure_point(count: int) -> dict:
    """One point, in this process: first sync, then a no-op sync (call in a fresh process)."""
    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    sys.path.insert(0, str(ROOT))
    from gitops.source.base import DirSource
    from gitops.store import Registry, SqliteStore
    from gitops.sync.engine import SyncEngine

    with tempfile.TemporaryDirectory(prefix="gitops-scale-") as tmp:
        repo, db = Path(tmp) / "repo", Path(tmp) / "state.db"
        write_repo(repo, count)
        rss_before = _rss_mb()
        store = Registry(SqliteStore(db))
        engine = SyncEngine(store, DirSource(str(repo)))
        t0 = time.perf_counter()
        first = engine.sync_once("manual")
        t1 = time.perf_counter()
        noop = engine.sync_once("manual")
        t2 = time.perf_counter()
        if first.result != "synced" or noop.result != "unchanged":
            raise RuntimeError(f"{count} objects: first={first.result} {first.message} "
                               f"noop={noop.result} {noop.message}")
        applied = len(store.inventory())
        store.close()
        db_mb = sum(p.stat().st_size for p in Path(tmp).glob("state.db*")) / 2**20
    return {"objects": count, "applied": applied, "first_sync_s": t1 - t0,
            "noop_sync_s": t2 - t1,
            "noop_render_s": noop.timings.get("render", 0.0),
            "noop_diff_s": noop.timings.get("diff", 0.0),
            "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": rss_before, "store_mb": db_mb}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def point_in_child(count: int, timeout: float = 600) -> dict:
    out = subprocess.run([sys.executable, __file__, "--point", str(count)], capture_output=True,
                         text=True, timeout=timeout, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"scale point {count} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def curves(counts=COUNTS, rounds: int = 1) -> list[dict]:
    """Median over `rounds` of each point, every point in its own process."""
    points = []
    for count in counts:
        runs = [point_in_child(count) for _ in range(rounds)]
        points.append({k: statistics.median(r[k] for r in runs) if k != "objects" else count
                       for k in runs[0]})
    return points


def run(quick: bool = False) -> dict:
    """Benchmark interface: the scaling curve (one round when quick, median of 3 otherwise)."""
    return {"scaling_curves": curves(COUNTS, rounds=1 if quick else 3)}


def print_table(points: list[dict]) -> None:
    print(f"{'objects':>8} {'first sync s':>13} {'no-op sync s':>13} {'no-op ms/obj':>13} "
          f"{'render s':>9} {'diff s':>8} {'peak RSS MB':>12} {'store MB':>9}")
    for p in points:
        print(f"{p['objects']:>8} {p['first_sync_s']:>13.3f} {p['noop_sync_s']:>13.3f} "
              f"{p['noop_sync_s'] * 1e3 / p['objects']:>13.3f} {p['noop_render_s']:>9.3f} "
              f"{p['noop_diff_s']:>8.3f} {p['peak_rss_mb']:>12.1f} {p['store_mb']:>9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default=",".join(map(str, COUNTS)))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--point", type=int, help=argparse.SUPPRESS)   # internal: one child point
    args = ap.parse_args()
    if args.point:
        print(json.dumps(measure_point(args.point)))
        return
    print_table(curves([int(c) for c in args.counts.split(",")], args.rounds))


if __name__ == "__main__":
    main()
