"""The agent's HTTP face: a Kubernetes-shaped read API plus gitops control endpoints."""
