"""Cluster DNS names as pods see them (pure): the domain, a namespace's search path, and
the resolv.conf the node agent mounts into a pod's containers."""

from __future__ import annotations

from collections.abc import Iterable

CLUSTER_DOMAIN = "cluster.local"
RESOLV_OPTIONS = ["ndots:5"]


def normalize(name: str) -> str:
    """Lower case, no trailing dot: the form names are stored and compared in."""
    return name.strip().rstrip(".").lower()


def search_path(namespace: str, domain: str = CLUSTER_DOMAIN) -> list[str]:
    """The search domains a pod in namespace gets, as Kubernetes sets them."""
    domain = normalize(domain)
    return [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]


def resolv_conf(nameservers: Iterable[str], namespace: str, domain: str = CLUSTER_DOMAIN) -> str:
    """The /etc/resolv.conf a pod's containers should see (for bind-mounting it)."""
    lines = [f"nameserver {ns}" for ns in nameservers]
    lines.append("search " + " ".join(search_path(namespace, domain)))
    lines.append("options " + " ".join(RESOLV_OPTIONS))
    return "\n".join(lines) + "\n"
