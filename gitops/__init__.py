"""gitops: run Kubernetes manifests from git on a Docker host."""

__version__ = "0.1.0"
