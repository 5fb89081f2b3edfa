"""Time load_text + validate over 1,000 varied manifests generated in memory.

    python bench/validate_bench.py [count]

Prints one table; the first (cold) round compiles validators and parses the YAML, the warm
rounds reuse the validators and the loader's cache of parsed files.
`run(quick)` returns the figures for bench/run.py: validate_per_object_ms is the median of
the warm rounds (the agent validates every revision with validators it compiled once).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gitops.manifests.loader import load_text  # noqa: E402
from gitops.manifests.validate import validate  # noqa: E402


def deployment(i: int) -> dict:
    labels = {"app": f"app-{i}", "tier": ["web", "api", "worker"][i % 3]}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"app-{i}", "namespace": f"ns-{i % 7}", "labels": labels},
        "spec": {
            "replicas": i % 5 + 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"example.com/rev": str(i)}},
                "spec": {"containers": [{
                    "name": "main", "image": f"registry.local/app:{i}",
                    "args": ["--port", "8080"],
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [{"name": f"VAR_{k}", "value": str(k)} for k in range(i % 6)],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"cpu": 1, "memory": "128Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                       "periodSeconds": 5},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                }], "volumes": [{"name": "config", "configMap": {"name": f"cfg-{i}"}}]},
            },
        },
    }


def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": f"ns-{i % 7}"},
            "spec": {"type": "NodePort" if i % 4 == 0 else "ClusterIP",
                     "selector": {"app": f"app-{i}"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def configmap(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"cfg-{i}", "namespace": f"ns-{i % 7}"},
            "data": {f"key{k}": f"value {k}" for k in range(i % 10 + 1)}}


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i}"},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}


def cronjob(i: int) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": f"cron-{i}"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "job", "image": "busybox", "args": ["date"]}]}}}}}}


def rbac(i: int) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": f"role-{i}", "namespace": f"ns-{i % 7}"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}


def statefulset(i: int) -> dict:
    body = deployment(i)
    body["kind"] = "StatefulSet"
    body["metadata"]["name"] = f"db-{i}"
    body["spec"]["serviceName"] = f"svc-{i}"
    return body


MAKERS = [deployment, service, configmap, deployment, service, configmap, pod, cronjob,
          rbac, statefulset]


def measure(count: int = 1000, rounds: int = 5) -> list[dict]:
    """One row per round: objects, errors, load and validation times (ms)."""
    text = yaml.safe_dump_all([MAKERS[i % len(MAKERS)](i) for i in range(count)])
    rows = []
    for r in range(rounds):
        t0 = time.perf_counter()
        loaded = load_text(text, "bench.yaml")
        t1 = time.perf_counter()
        errors = validate(loaded.objects)
        t2 = time.perf_counter()
        n = len(loaded.objects)
        rows.append({"round": "cold" if r == 0 else f"warm{r}", "objects": n,
                     "errors": len(loaded.errors) + len(errors), "load_ms": (t1 - t0) * 1e3,
                     "validate_ms": (t2 - t1) * 1e3, "kib": len(text) / 1024})
    return rows


def run(quick: bool = False) -> dict:
    rows = measure(1000, 3 if quick else 5)
    warm = rows[1:]
    per_object = statistics.median(r["validate_ms"] / r["objects"] for r in warm)
    return {"validate_per_object_ms": round(per_object, 4),
            "validate_cold_per_object_ms": round(rows[0]["validate_ms"] / rows[0]["objects"], 4),
            # the loader caches parsed files: the first round parses, the others hit
            "load_per_object_ms": round(rows[0]["load_ms"] / rows[0]["objects"], 4),
            "load_cached_per_object_ms": round(statistics.median(r["load_ms"] / r["objects"]
                                                                 for r in warm), 4),
            "validate_errors": rows[-1]["errors"]}


def main(count: int = 1000, rounds: int = 5) -> None:
    rows = measure(count, rounds)
    print(f"{count} objects, {rows[0]['kib']:.0f} KiB of YAML")
    print(f"{'round':<7} {'objects':>7} {'errors':>6} {'load ms':>9} {'valid. ms':>9} "
          f"{'load ms/obj':>11} {'valid. ms/obj':>13}")
    for r in rows:
        n = r["objects"]
        print(f"{r['round']:<7} {n:>7} {r['errors']:>6} {r['load_ms']:>9.1f} "
              f"{r['validate_ms']:>9.1f} {r['load_ms'] / n:>11.3f} {r['validate_ms'] / n:>13.3f}")
    warm = sorted(r["validate_ms"] / r["objects"] for r in rows[1:]) or [0.0]
    print(f"validate_per_object_ms (median of warm rounds): "
          f"{statistics.median(warm):.3f}  target <= 0.5")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
