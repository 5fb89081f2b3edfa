"""The agent's HTTP face: the Kubernetes API (kube/) plus gitops control endpoints."""
