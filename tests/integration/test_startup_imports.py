"""The agent's and `gitops up`'s start-up import only what starting needs: the precise
schema validator, the UI's templates and protobuf load when first used (issue 15's
up_vs_compose_ratio_20_services: start-up is most of `up --wait`)."""

from __future__ import annotations

import json
import subprocess
import sys

LAZY = ("jsonschema", "referencing", "kubernetes_validate", "jinja2", "google.protobuf")


def imported(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(list(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_agent_start_leaves_heavy_modules_for_first_use():
    loaded = imported("import gitops.cli.app, gitops.daemon")
    assert "gitops.daemon" in loaded and "docker" in loaded     # what it needs is there
    assert not loaded & set(LAZY), sorted(loaded & set(LAZY))


def test_validation_still_loads_the_precise_validator_for_an_invalid_manifest():
    loaded = imported(
        "from gitops.manifests.loader import load_text\n"
        "from gitops.manifests.validate import validate\n"
        "objs = load_text('apiVersion: v1\\nkind: Pod\\nmetadata: {name: p}\\n"
        "spec: {containers: [{name: a, image: b, bogus: 1}]}\\n', 'p.yaml')\n"
        "problems = validate(objs.objects)\n"
        "assert any('bogus' in str(p) for p in problems), problems")
    assert "jsonschema" in loaded

