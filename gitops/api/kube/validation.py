"""Server-side field validation (fieldValidation=Strict|Warn|Ignore) and node policy.

kubectl finds `fieldValidation` on the PATCH operations of /openapi/v3 and leaves
validation to the server, sending Strict by default: unknown fields are then a 400
"strict decoding error", as from a Kubernetes server; with Warn they come back as
`Warning` headers. Schema violations are 422 Invalid whatever the directive. Host access
(hostPath, privileged, ...) is refused unless the agent allows it, as for git. A write
of the status subresource has its status checked too: controllers and health read it,
and a status no Kubernetes server would store must not wedge them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitops.api.kube import status as st
from gitops.api.kube.registry import Resource
from gitops.manifests import policy
from gitops.manifests.loader import SourceObject
from gitops.manifests.validate import validate
from gitops.model.version import KUBE_MINOR


@dataclass
class Outcome:
    warnings: list[str] = field(default_factory=list)


def check(resource: Resource, obj: dict, directive: str, allow_host_access: bool,
          status: bool = False) -> Outcome:
    """Raise the ApiError Kubernetes would, or return the warnings to send. status: a
    write of the status subresource (the rest of obj is the stored object's)."""
    directive = (directive or "Warn").capitalize()
    if directive not in ("Strict", "Warn", "Ignore"):
        raise st.bad_request(f'fieldValidation must be "Ignore", "Warn" or "Strict", not '
                             f'"{directive}"')
    body = obj if status else {k: v for k, v in obj.items() if k != "status"}
    name = (obj.get("metadata") or {}).get("name", "")
    source = SourceObject(body, "<request>", 0)
    unknown, invalid = [], []
    for err in validate([source], KUBE_MINOR):
        if err.message.startswith("unknown field"):
            unknown.append(err.path)
        elif "duplicate object" not in err.message:
            invalid.append((err.path, err.message))
    if invalid:
        raise st.invalid(resource.kind, resource.group, name, invalid)
    outcome = Outcome()
    if unknown and directive == "Strict":
        raise st.bad_request("strict decoding error: " + ", ".join(
            f'unknown field "{p}"' for p in unknown))
    if unknown and directive == "Warn":
        outcome.warnings = [f'unknown field "{p}"' for p in unknown]
    if status:
        return outcome               # the spec is the stored one, admitted when written
    refused = policy.check([source], allow_host_access)
    if refused:
        raise st.ApiError(403, "Forbidden", f'{resource.plural} "{name}" is forbidden: ' +
                          "; ".join(f"{e.path}: {e.message}" for e in refused))
    # What the node cannot honour: kubectl shows each as "Warning: ...", as for deprecations.
    outcome.warnings += [f"{w.path}: {w.message}" for w in policy.warnings([source])]
    return outcome
