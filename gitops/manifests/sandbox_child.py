"""The child side of gitops.manifests.sandbox: one renderer run under a memory budget.

    python -I -S sandbox_child.py MEMORY_BYTES CPU_SECONDS exec TOOL [ARG...]
    python -I -S sandbox_child.py MEMORY_BYTES CPU_SECONDS exec-offline TOOL [ARG...]
    python -I -S sandbox_child.py MEMORY_BYTES CPU_SECONDS helm SITE_DIR REQUEST_JSON

`exec` replaces this process with a binary (kustomize, kubectl, helm) once the limits are set;
`exec-offline` does too, in a network namespace of its own when the kernel lets us make one
(sops: nothing it does for us needs the network); `helm` renders a chart with helm-python-sdk
(imported from SITE_DIR) and prints the result as one JSON object; values that must not be on
a command line (decrypted ones) come on stdin as {"inline_values": {"INDEX": "YAML"}}.
Only the standard library loads here, never gitops: the limits are set before anything big is
imported, and a Python start without `site` stays cheap.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from typing import Any

EXIT_OUT_OF_MEMORY = 86     # the helm worker ran out of its budget inside Python
_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000


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


def leave_network() -> bool:
    """Move this process into a new network namespace with nothing but a down loopback (as
    root; else inside a user namespace of its own, which keeps our uid's file access)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return any(libc.unshare(flags) == 0
                   for flags in (_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET))
    except (OSError, AttributeError):
        return False


def render_chart(helm: Any, request: dict, inline: dict[str, str] | None = None) -> dict:
    """{"docs": [[template, text]...], "chart_name"} or {"error", "values_file" | "chart_name"}.
    `inline`: the text of some values files by index (decrypted: never read from the file)."""
    values: dict = {}
    for index, path in enumerate(request["values_files"]):
        try:
            if inline and str(index) in inline:
                text = inline[str(index)]
            else:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            values = merge_values(values, helm.values_from_yaml(text) or {})
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
    if mode in ("exec", "exec-offline"):
        if mode == "exec-offline":
            leave_network()     # best effort: sops refuses keys it was not given anyway
        os.execv(rest[0], rest)
    site, request = rest
    try:
        sys.path.insert(0, site)
        import helm_python
        piped = sys.stdin.read()         # /dev/null unless values came inline
        inline = json.loads(piped).get("inline_values") if piped.strip() else None
        sys.stdout.write(json.dumps(render_chart(helm_python, json.loads(request), inline)))
        sys.stdout.flush()
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)


if __name__ == "__main__":
    main(sys.argv[1:])
