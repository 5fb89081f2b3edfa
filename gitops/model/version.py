"""The Kubernetes version this agent's API announces (its schemas, discovery, kubectl's
version skew checks, the Node's kubelet version) (pure)."""

from __future__ import annotations

KUBE_VERSION = (1, 32)
KUBE_MINOR = "%d.%d" % KUBE_VERSION


def kube_version() -> dict:
    """The /version document, as kube-apiserver serves it."""
    major, minor = KUBE_VERSION
    return {"major": str(major), "minor": str(minor), "gitVersion": f"v{major}.{minor}.0-gitops",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": "", "compiler": "python", "platform": "linux/amd64"}
