"""`gitops agent`: this host as a node of a server elsewhere (k3s' `agent`)."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import POD_NETWORK_BACKEND_HELP, POD_NETWORK_BACKENDS, fail
from gitops.errors import GitopsError


@click.command("agent")
@click.option("--server", "servers", required=True, metavar="URL[,URL...]",
              help="The server(s) to join, e.g. https://10.77.0.1:6443 (the next one is "
                   "tried when one does not answer).")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False),
              help="The join token: a copy of the server's DATA_DIR/node-token.")
@click.option("--data-dir", default=".gitops-node", show_default=True,
              help="This node's own state (credential, pod files).")
@click.option("--node-name", default="", help="Node name (default: the host name).")
@click.option("--node-ip", default="",
              help="Address other hosts reach this node at (default: this host's address "
                   "on the way to the server).")
@click.option("--kubelet-port", default=10250, show_default=True, type=click.IntRange(1, 65535),
              help="Port of this node's own endpoint (logs, exec, port-forward for the "
                   "server), on --node-ip.")
@click.option("--pod-network-backend", default="auto", show_default=True,
              type=click.Choice(POD_NETWORK_BACKENDS), help=POD_NETWORK_BACKEND_HELP)
@click.option("--allow-host-access", is_flag=True,
              help="Allow hostPath, privileged, hostNetwork, hostPID and hostIPC.")
@click.option("--simulate", default=0, type=click.IntRange(0, 100_000), metavar="N",
              help="Run N simulated nodes instead (like kwok: their pods go Running "
                   "without containers), joined through the API; for measuring the "
                   "control plane.")
@click.option("--simulate-prefix", default="sim-node-", show_default=True,
              help="Simulated nodes' name prefix (NAME00000, NAME00001...).")
@click.option("--log-format", default="auto", type=click.Choice(["auto", "json", "console"]))
@click.option("--log-level", default="info")
def node_agent(servers: str, token_file: str, data_dir: str, node_name: str, node_ip: str,
               kubelet_port: int, pod_network_backend: str, allow_host_access: bool,
               simulate: int, simulate_prefix: str, log_format: str, log_level: str) -> None:
    """Join a server as a node and run its pods here (foreground; SIGTERM stops it).

    The server is one started with --advertise-address; the token is its
    DATA_DIR/node-token. The node verifies the server's CA against the token, gets a
    credential of its own, and then talks to the server only through its API.

    \b
    Examples:
      gitops agent --server https://10.77.0.1:6443,https://10.77.0.2:6443 \\
        --token-file node-token --data-dir /srv/gitops-node
      gitops agent --simulate 1000 --server https://10.77.0.1:6443 --token-file node-token
    """
    from gitops import log as logsetup
    from gitops.api.join import valid_node_name
    from gitops.cluster.node import NodeConfig, run_node
    urls = [s.strip() for s in servers.split(",") if s.strip()]
    for url in urls:
        if not url.startswith("https://"):
            fail(f"--server {url}: expected https://HOST:PORT (the server's "
                 "--advertise-address and --https-listen-port)")
    if node_name and not valid_node_name(node_name):
        fail(f"--node-name {node_name!r} is not a valid node name (lowercase letters, "
             "digits, '-' and '.')")
    if simulate and not valid_node_name(f"{simulate_prefix}00000"):
        fail(f"--simulate-prefix {simulate_prefix!r} does not make valid node names")
    logsetup.configure(log_format, log_level)
    try:
        if simulate:
            from gitops.cluster.simulate import SimulateConfig, run_simulated
            run_simulated(SimulateConfig(urls, Path(token_file), simulate, simulate_prefix))
            return
        run_node(NodeConfig(urls, Path(token_file), Path(data_dir), node_name, node_ip,
                            allow_host_access, kubelet_port, pod_network_backend))
    except GitopsError as exc:
        fail(str(exc))
