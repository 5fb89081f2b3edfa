"""The Kubernetes API served from the store, so the real kubectl works against the agent."""
