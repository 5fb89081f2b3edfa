#!/usr/bin/env bash
# A CI job for a repository of manifests: validate, preview the change against what is
# deployed, bring up an ephemeral environment, test it through a NodePort, tear it down.
# Any CI that runs a shell on a machine with Docker and `gitops` runs it as it is.
set -euo pipefail
REPO=${REPO:-example-repo}          # the manifests of the change under test
DEPLOYED=${DEPLOYED:-/srv/gitops}   # data dir of the agent that runs the deployed revision
ENV_DIR=${ENV_DIR:-$(mktemp -d)}    # data dir of this job's ephemeral environment
PORT=${PORT:-30080}                 # the NodePort the tests talk to
OUT=${OUT:-.}                       # reports for the CI to keep: validate.xml, diff.md, health.json

# 1. Every manifest valid? (exit 1 fails the job; the JUnit report names file:line)
gitops validate -o junit "$REPO" > "$OUT/validate.xml"

# 2. What would merging change in the deployed environment? (exit 1 = changes: fine)
rc=0
gitops diff "$REPO" --data-dir "$DEPLOYED" -o markdown > "$OUT/diff.md" || rc=$?
[ "$rc" -le 1 ] || exit "$rc"

# 3. An ephemeral environment, healthy or the job fails with why (and health.json)
trap 'gitops down --volumes --data-dir "$ENV_DIR" && rm -rf "$ENV_DIR"' EXIT
gitops up "$REPO" --wait --timeout 300 --data-dir "$ENV_DIR" --report "$OUT/health.json"
gitops status --data-dir "$ENV_DIR"

# 4. Tests against the NodePort: the page, then a message through web -> api -> db
#    (grep reads all of its input: `grep -q` could make curl fail with a broken pipe)
curl -fsS "http://127.0.0.1:$PORT/" | grep -F "<title>Guestbook" >/dev/null
curl -fsS -X POST -H 'Content-Type: application/json' -d '{"text": "hello from CI"}' \
  "http://127.0.0.1:$PORT/api/messages" >/dev/null
curl -fsS "http://127.0.0.1:$PORT/api/messages" | grep -F "hello from CI" >/dev/null
echo "CI job passed"
