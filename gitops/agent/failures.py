"""What went wrong on the node, kept until it goes right (pure): image pulls (their back-off
counts from them), actions that failed for a container, and pods whose pass failed as a
whole. A pod's status shows them as its containers' waiting reasons.
"""

from __future__ import annotations

from gitops.agent import plan as P

Reason = tuple[str, str]     # (kubelet-style reason, message)


def containers_failed_by(action: P.PodAction, pod: dict) -> list[str]:
    """The containers a failed action leaves waiting: a lost sandbox holds up the whole
    pod; any other action its own container."""
    if isinstance(action, P.RunContainer):
        names = [action.container["name"]]
    elif isinstance(action, P.RunSandbox):
        names = [c["name"] for c in pod["spec"].get("containers", [])]
    else:
        names = [getattr(action, "name", "")]
    return [name for name in names if name]


class FailureBook:
    def __init__(self) -> None:
        self.pulls: dict[str, P.PullFailure] = {}          # image -> its last failed pull
        self._containers: dict[str, dict[str, Reason]] = {}   # pod uid -> name -> why
        self._pods: dict[str, Reason] = {}                  # pod uid -> why its pass failed

    # -- image pulls ----------------------------------------------------------------------
    def pull_failed(self, image: str, at: float, reason: str, message: str) -> P.PullFailure:
        previous = self.pulls.get(image)
        failure = P.PullFailure(at, (previous.attempts if previous else 0) + 1, reason,
                                message)
        self.pulls[image] = failure
        return failure

    def pulled(self, image: str) -> None:
        self.pulls.pop(image, None)

    # -- containers and pods --------------------------------------------------------------
    def action_failed(self, uid: str, names: list[str], reason: str, message: str) -> None:
        for name in names:
            self._containers.setdefault(uid, {})[name] = (reason, message)

    def container_started(self, uid: str, name: str) -> None:
        self._containers.get(uid, {}).pop(name, None)

    def pod_failed(self, uid: str, reason: str, message: str) -> None:
        self._pods[uid] = (reason, message)

    def pod_synced(self, uid: str) -> None:
        self._pods.pop(uid, None)

    def waiting(self, pod: dict, planned: dict[str, Reason]) -> dict[str, Reason]:
        """Each container's waiting reason for the pod's status: a failed pass holds up
        every container, the plan's reasons come next, a failed action wins."""
        uid = pod["metadata"]["uid"]
        failed = self._pods.get(uid)
        spec = pod["spec"]
        everyone = ({c["name"]: failed for c in [*(spec.get("initContainers") or []),
                                                 *spec.get("containers", [])]}
                    if failed else {})
        return {**everyone, **planned, **self._containers.get(uid, {})}

    def forget(self, known: set[str]) -> None:
        """Drop what is kept for pods not in known (image pulls are kept: per image)."""
        for table in (self._containers, self._pods):
            for uid in [uid for uid in table if uid not in known]:
                del table[uid]
