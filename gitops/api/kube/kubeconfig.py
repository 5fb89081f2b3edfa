"""A kubeconfig for kubectl: the agent's API address, its bearer token, namespace default."""

from __future__ import annotations

import base64

import yaml

from gitops.errors import GitopsError
from gitops.paths import DataDir


def kubeconfig(dd: DataDir, namespace: str = "default") -> str:
    info = dd.read_agent()
    if info is None:
        raise GitopsError(f"no agent is running for data dir {dd.root} (start one with "
                          "`gitops up SOURCE`); its API address is chosen at start")
    name = f"gitops-{dd.instance}"
    url = info.get("kube_url") or info["url"]
    cluster: dict = {"server": url}
    ca = dd.root / "ca.crt"
    if url.startswith("https://"):
        if not ca.exists():
            raise GitopsError(f"the agent serves HTTPS but {ca} is missing")
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": dd.token()}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name,
                                                "namespace": namespace}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)
