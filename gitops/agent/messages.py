"""Termination messages: what a finished container wrote to its terminationMessagePath,
or, with terminationMessagePolicy FallbackToLogsOnError, the end of its log when it failed
and wrote nothing (80 lines, 2 KiB at most, as the kubelet takes them)."""

from __future__ import annotations

import threading

from gitops.agent.files import PodFiles
from gitops.agent.runtime import ContainerInfo, Runtime

LOG_LINES = 80
LOG_BYTES = 2048
_FALLBACK = "FallbackToLogsOnError"


class TerminationMessages:
    def __init__(self, files: PodFiles, runtime: Runtime) -> None:
        self.files = files
        self.runtime = runtime
        self._logs: dict[tuple[str, str], str] = {}     # (id, finishedAt) -> log tail
        self._lock = threading.Lock()

    def of(self, pod: dict, containers: list[ContainerInfo]) -> dict[str, str]:
        """Per finished container of the pod, its message ("" entries left out)."""
        uid = pod["metadata"]["uid"]
        spec = pod.get("spec", {})
        specs = {c["name"]: c for c in [*(spec.get("initContainers") or []),
                                        *spec.get("containers", [])]}
        out = {}
        for c in containers:
            if c.state not in ("exited", "dead") or c.container not in specs:
                continue
            text = self.files.termination_message(uid, c.container)
            if not text.strip() and c.exit_code != 0 and \
                    specs[c.container].get("terminationMessagePolicy") == _FALLBACK:
                text = self._log_tail(c)
            if text:
                out[c.container] = text
        return out

    def _log_tail(self, c: ContainerInfo) -> str:
        key = (c.id, c.finished_at)
        with self._lock:
            if key in self._logs:
                return self._logs[key]
        try:
            text = self.runtime.logs(c.id, tail=LOG_LINES)
        except Exception:        # noqa: BLE001 - no message is better than no status
            return ""
        text = text.encode()[-LOG_BYTES:].decode(errors="replace")
        with self._lock:
            if len(self._logs) > 1000:
                self._logs.clear()
            self._logs[key] = text
        return text
