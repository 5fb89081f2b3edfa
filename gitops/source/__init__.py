"""Where desired state comes from: a git repository or a local directory."""

from pathlib import Path

from gitops.source.base import DirSource, Revision, Source, is_git_url


def make_source(spec: str, data_dir: Path, ref: str = "", path: str = "",
                git_timeout: float = 60.0) -> Source:
    if is_git_url(spec):
        from gitops.source.git import GitSource     # GitPython only when a URL needs it
        return GitSource(url=spec, ref=ref, path=path, workdir=data_dir / "repos",
                         timeout=git_timeout)
    return DirSource(url=str(Path(spec).resolve()), ref=ref, path=path)


__all__ = ["Revision", "Source", "make_source"]
