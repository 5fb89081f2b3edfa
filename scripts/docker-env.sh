# Sourced by the other scripts: where the project's own Docker engine lives.
# It never shares the default socket, data root or bridge with another engine.
GITOPS_DOCKER_RUN=${GITOPS_DOCKER_RUN:-/run/gitops-docker}
GITOPS_DOCKER_ROOT=${GITOPS_DOCKER_ROOT:-/var/lib/gitops-docker}
export DOCKER_HOST=${DOCKER_HOST:-unix://$GITOPS_DOCKER_RUN/docker.sock}
