"""A kubeconfig for kubectl: the agent's API address, its bearer token, namespace default."""

from __future__ import annotations

import base64
import json

import yaml

from gitops.errors import GitopsError
from gitops.paths import DataDir


def kubeconfig(dd: DataDir, namespace: str = "default") -> str:
    """The data dir's agent as the current context; with several servers on one store
    (DATA_DIR/peers.json), a context for each other server too, `NAME-2`, `NAME-3`... (the
    first of them current when the data dir's own agent is down): kubectl talks to one
    server per context."""
    info = dd.read_agent()
    others = _other_servers(dd)
    if info is None and not others:
        raise GitopsError(f"no agent is running for data dir {dd.root} (start one with "
                          "`gitops up SOURCE`); its API address is chosen at start")
    name = f"gitops-{dd.instance}"
    urls = ([info.get("kube_url") or info["url"]] if info else []) + \
        [o.get("server") or o.get("kube_url") or o["url"] for o in others]
    names = [name if i == 0 and info else f"{name}-{i + (1 if info else 2)}"
             for i in range(len(urls))]
    ca = dd.root / "ca.crt"
    clusters = []
    for cluster_name, url in zip(names, urls):
        cluster: dict = {"server": url}
        if url.startswith("https://"):
            if not ca.exists():
                raise GitopsError(f"the agent serves HTTPS but {ca} is missing")
            cluster["certificate-authority-data"] = \
                base64.b64encode(ca.read_bytes()).decode()
        clusters.append({"name": cluster_name, "cluster": cluster})
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": clusters,
        "users": [{"name": name, "user": {"token": dd.token()}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": name,
                                             "namespace": namespace}} for n in names],
        "current-context": names[0],
    }
    return yaml.safe_dump(config, sort_keys=False)


def _other_servers(dd: DataDir) -> list[dict]:
    try:
        doc = json.loads((dd.root / "peers.json").read_text())
    except (OSError, ValueError):
        return []
    return [s for s in doc.get("servers") or [] if isinstance(s, dict) and s.get("url")]
