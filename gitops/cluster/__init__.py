"""Several hosts, one control plane (k3s-shaped): the server's side (server.py: join,
node IPAM, node lifecycle, the advertised listener) and a node alone (node.py: `gitops
agent --server`)."""
