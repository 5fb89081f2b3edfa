# The agent as a container. It drives the host's engine through the mounted socket and
# needs the host network so NodePorts listen on the host's loopback:
#   docker build -t gitops:0.1.0 .
#   docker run -d --network host -v /var/run/docker.sock:/var/run/docker.sock \
#     -v "$PWD/.gitops:/data" gitops:0.1.0 run --repo https://example.invalid/repo.git --data-dir /data
# BASE can point at any local image with Python 3.11 (no registry is needed when it exists).
ARG BASE=python:3.11-slim
FROM ${BASE}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gitops ./gitops
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /data
ENTRYPOINT ["gitops"]
CMD ["--help"]
