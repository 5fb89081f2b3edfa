"""Where desired state comes from: a git repository or a local directory."""

from gitops.source.base import Revision, Source, make_source

__all__ = ["Revision", "Source", "make_source"]
