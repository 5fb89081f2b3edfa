"""Node agent: runs bound pods on a container runtime and reports their status."""
