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

    def pod_address(self, pod: dict) -> str:
        """Where this node reaches the pod: the address its running network holder has on
        the pod network, as the engine reports it (never the stored status.podIP, which
        any API writer could aim at another host); loopback for a hostNetwork pod; "" when
        the pod runs nowhere here (blocking)."""
        uid = pod["metadata"].get("uid", "")
        for info in self.runtime.list_containers(pod_uid=uid):
            if info.pod_uid == uid and info.state == "running" and info.ip:
                return info.ip
        return "127.0.0.1" if (pod.get("spec") or {}).get("hostNetwork") else ""

    def start_exec(self, container_id: str, command: list[str], stdin: bool, tty: bool) -> Any:
        return self.runtime.exec_session(container_id, command, stdin, tty)

    def start_attach(self, container_id: str, stdin: bool) -> Any:
        return self.runtime.attach_session(container_id, stdin)
