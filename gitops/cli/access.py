"""Reaching the agent's workloads from outside: `port-forward`, and `kubeconfig` for
kubectl."""

from __future__ import annotations

import click

from gitops.cli.client import Client
from gitops.cli.common import DATA_DIR, NAMESPACE, agent_client, fail
from gitops.errors import GitopsError
from gitops.paths import DataDir


@click.command("port-forward")
@click.argument("target")
@click.argument("ports", nargs=-1, required=True)
@NAMESPACE
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Local address to listen on.")
@DATA_DIR
def port_forward(target: str, ports: tuple[str, ...], namespace: str, address: str,
                 data_dir: str) -> None:
    """Forward local ports to a pod or Service: TARGET is pod/NAME or svc/NAME, each PORT
    LOCAL:REMOTE, PORT or :REMOTE. Runs until interrupted.

    \b
    Examples:
      gitops port-forward svc/web 8080:80
      gitops port-forward pod/db-0 :5432 --address 127.0.0.1
    """
    from gitops.proxy import portforward as pf
    try:
        tgt, specs = pf.parse_target(target), [pf.parse_port(p) for p in ports]
    except GitopsError as exc:
        fail(str(exc))
    client = agent_client(data_dir)
    fetch = _forward_fetch(client, namespace, tgt, specs)
    try:
        first = fetch()
    except GitopsError as exc:
        fail(str(exc), 1)
    if tgt.kind == "pod" and not all(first):
        fail(f'pod "{tgt.name}" is not running or has no such port', 1)
    forwarder = pf.Forwarder(address, specs, fetch)

    def announce(port, spec):
        click.echo(f"Forwarding from {address}:{port} -> {spec.remote}")
    try:
        from gitops.proxy.loop import run
        run(pf.run(forwarder, announce))
    except GitopsError as exc:
        fail(str(exc), 1)


def _forward_fetch(client: Client, namespace: str, tgt, specs):
    """The targets of each port, read again at each refresh of the forwarder (pods come
    and go)."""
    from gitops.proxy import portforward as pf
    base = f"/api/v1/namespaces/{namespace}"

    def fetch():
        if tgt.kind == "pod":
            pod = client.get(f"{base}/pods/{tgt.name}")
            return [pf.pod_targets(pod, s.remote) for s in specs]
        svc = client.get(f"{base}/services/{tgt.name}")
        try:
            eps = client.get(f"{base}/endpoints/{tgt.name}")
        except GitopsError:   # not made yet: no endpoints
            eps = None
        return [pf.service_targets(svc, eps, s.remote) for s in specs]
    return fetch


@click.command()
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace the kubeconfig's context uses.")
@DATA_DIR
def kubeconfig(namespace: str, data_dir: str) -> None:
    """Print a kubeconfig so kubectl talks to this agent (KUBECONFIG=FILE kubectl ...).

    \b
    Examples:
      gitops kubeconfig > kubeconfig.yaml
      KUBECONFIG=kubeconfig.yaml kubectl get pods -o wide
    """
    from gitops.api.kube.kubeconfig import kubeconfig as build
    try:
        click.echo(build(DataDir.at(data_dir), namespace), nl=False)
    except GitopsError as exc:
        fail(str(exc))
