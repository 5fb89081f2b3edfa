"""Sync cost: the first sync (creates) and a no-op re-sync, at several object counts.

    python bench/sync_bench.py [--counts 100,1000]

Prints a table; no Docker needed (controllers and the node agent are not involved).
`run(quick)` returns noop_sync_1000_objects_s and noop_sync_10000_objects_s: a re-sync of
the unchanged revision when nothing changed since the sync before (fetch, plan against the
store, nothing to apply): what the agent does on every poll. The planner re-diffs only what
changed since its last plan, so the sync right after the first one still looks once at
every object the first one wrote; that figure is reported too (`..._first_look_s`), with
the first sync and the phase timings.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gitops.source.base import DirSource  # noqa: E402
from gitops.store import Registry, SqliteStore  # noqa: E402
from gitops.sync.engine import SyncEngine  # noqa: E402

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, labels: {{app: app-{i}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers:
        - name: main
          image: gitops/busybox:1
          ports: [{{containerPort: 8080}}]
          env: [{{name: N, value: "{i}"}}]
---
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: app-{i}}}
spec:
  selector: {{app: app-{i}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg-{i}}}
data: {{key: "value-{i}", other: "x"}}
---
"""


def write_repo(root: Path, count: int) -> None:
    kinds = (DEPLOY, SERVICE, CONFIGMAP)
    per_file = 50
    for start in range(0, count, per_file):
        text = "".join(kinds[i % 3].format(i=i) for i in range(start, min(count, start + per_file)))
        (root / f"objects-{start:05d}.yaml").write_text(text)


def measure(count: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        repo, data = Path(tmp) / "repo", Path(tmp) / "data"
        repo.mkdir()
        data.mkdir()
        write_repo(repo, count)
        store = Registry(SqliteStore(data / "state.db"))
        engine = SyncEngine(store, DirSource(str(repo)))
        t0 = time.perf_counter()
        first = engine.sync_once("manual")
        t1 = time.perf_counter()
        second = engine.sync_once("manual")   # looks once at what the first one wrote
        t2 = time.perf_counter()
        third = engine.sync_once("manual")    # a poll: nothing changed since the last
        t3 = time.perf_counter()
        assert first.result == "synced" and second.result == third.result == "unchanged", (
            first, second, third)
        store.close()
        return {"objects": count, "first_s": t1 - t0, "first_look_s": t2 - t1,
                "noop_s": t3 - t2, "noop_timings": third.timings,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def run(quick: bool = False) -> dict:
    _quiet()
    out: dict = {}
    for count, rounds in ((1000, 1 if quick else 3), (10000, 1)):
        samples = [measure(count) for _ in range(rounds)]
        best = min(samples, key=lambda r: r["noop_s"])

        def median(field: str) -> float:
            return round(statistics.median(r[field] for r in samples), 4)
        out |= {f"noop_sync_{count}_objects_s": median("noop_s"),
                f"noop_sync_{count}_first_look_s": median("first_look_s"),
                f"first_sync_{count}_objects_s": median("first_s"),
                f"noop_sync_{count}_timings_ms": {k: round(v * 1000, 1)
                                                  for k, v in best["noop_timings"].items()}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="100,1000,10000")
    args = parser.parse_args()
    _quiet()
    print(f"{'objects':>8} {'first sync s':>13} {'first look s':>13} {'no-op s':>9} "
          f"{'render':>8} {'diff':>8} {'peak RSS MB':>12}")
    for count in (int(c) for c in args.counts.split(",")):
        r = measure(count)
        t = r["noop_timings"]
        print(f"{r['objects']:>8} {r['first_s']:>13.3f} {r['first_look_s']:>13.3f} "
              f"{r['noop_s']:>9.3f} {t.get('render', 0):>8.3f} "
              f"{t.get('diff', 0):>8.3f} {r['rss_mb']:>12.1f}")


if __name__ == "__main__":
    main()
