"""The child side of gitops.manifests.sandbox: one renderer run under a memory budget.

    python -I -S sandbox_child.py MEMORY_BYTES CPU_SECONDS exec TOOL [ARG...]
    python -I -S sandbox_child.py MEMORY_BYTES CPU_SECONDS helm SITE_DIR REQUEST_JSON

`exec` replaces this process with a binary (kustomize, kubectl, helm) once the limits are set;
`helm` renders a chart with helm-python-sdk (imported from SITE_DIR) and prints the result as
one JSON object. Only the standard library loads here, never gitops: the limits are set before
anything big is imported, and a Python start without `site` stays cheap.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any

EXIT_OUT_OF_MEMORY = 86     # the helm worker ran out of its budget inside Python


def set_limits(memory_bytes: int, cpu_seconds: int) -> None:
    # RLIMIT_DATA, not RLIMIT_AS: the Go runtime (Helm's SDK, kustomize, kubectl) reserves far
    # more address space than it uses and dies at start under a 1 GiB RLIMIT_AS, while
    # RLIMIT_DATA counts what a process maps writable (heap, Go arenas, thread stacks). Soft
    # and hard alike, so the renderer cannot raise it again.
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))     # no core file of a crashed render
    # The parent kills on its wall-clock budget; CPU time is the backstop should it die first.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def merge_values(base: dict, override: dict) -> dict:
    """Helm's merge of -f files: maps merge recursively, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = value
    return out


def render_chart(helm: Any, request: dict) -> dict:
    """{"docs": [[template, text]...], "chart_name"} or {"error", "values_file" | "chart_name"}."""
    values: dict = {}
    for index, path in enumerate(request["values_files"]):
        try:
            with open(path, encoding="utf-8") as f:
                values = merge_values(values, helm.values_from_yaml(f.read()) or {})
        except (OSError, UnicodeDecodeError, helm.HelmError) as exc:
            return {"error": f"values file: {exc}", "values_file": index}
    name = os.path.basename(request["chart"])
    try:
        with helm.Chart.load(request["chart"]) as chart:
            name = chart.name
            manifests = chart.render(values or None, name=request["release_name"] or name,
                                     namespace=request["namespace"], revision=1,
                                     is_install=True)
            crds = chart.crds
    except helm.HelmError as exc:
        return {"error": str(exc), "chart_name": name}
    docs = [[c["filename"], c["data"]] for c in crds] + sorted(manifests.items())
    return {"docs": docs, "chart_name": name}


def main(argv: list[str]) -> None:
    memory, cpu, mode, *rest = argv
    set_limits(int(memory), int(cpu))
    if mode == "exec":
        os.execv(rest[0], rest)
    site, request = rest
    try:
        sys.path.insert(0, site)
        import helm_python
        sys.stdout.write(json.dumps(render_chart(helm_python, json.loads(request))))
        sys.stdout.flush()
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)


if __name__ == "__main__":
    main(sys.argv[1:])
