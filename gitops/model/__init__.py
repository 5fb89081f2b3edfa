"""Typed view of Kubernetes objects: keys, kinds, selectors, metadata helpers (pure)."""

from gitops.model.kinds import KINDS, Kind, kind_for
from gitops.model.meta import ObjectKey, key_of, owner_uids

__all__ = ["KINDS", "Kind", "kind_for", "ObjectKey", "key_of", "owner_uids"]
