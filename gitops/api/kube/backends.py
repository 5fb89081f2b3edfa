"""What exec and attach need from the node: the pod's running container, and a Docker
exec in it or an attachment to its process."""

from __future__ import annotations

from typing import Any


class RuntimeStreams:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def container_id(self, pod: dict, container: str) -> str:
        """The running container of this pod by that name, or "" (blocking)."""
        uid = pod["metadata"].get("uid", "")
        for info in self.runtime.list_containers():
            if info.pod_uid == uid and info.container == container and info.state == "running":
                return info.id
        return ""

    def start_exec(self, container_id: str, command: list[str], stdin: bool, tty: bool) -> Any:
        return self.runtime.exec_session(container_id, command, stdin, tty)

    def start_attach(self, container_id: str, stdin: bool) -> Any:
        return self.runtime.attach_session(container_id, stdin)
