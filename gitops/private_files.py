"""Owner-only files. The data dir holds credentials (the API token, Secret data in state.db,
the repo URL, TLS keys), so whatever the agent writes there is for its owner alone: 0700
directories, 0600 files, written atomically (a crash never leaves a half-written token).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

OWNER_ONLY_UMASK = 0o077
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def write_atomic(path: Path, data: bytes | str, mode: int = PRIVATE_FILE) -> None:
    """Replace `path` with `data`: a temp file in the same dir, written, fsynced, renamed.
    The temp file has `mode` before it holds a byte (mkstemp makes it 0600)."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)         # the rename itself survives a power loss


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(root: Path) -> None:
    """Create `root` at 0700, or tighten one an older version made at 0755: the dir itself,
    and the files and dirs at its top level (the 0700 dir alone already keeps others out
    of everything below it). Symlinks are left alone: chmod would follow them."""
    root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(root, PRIVATE_DIR)
    for entry in os.scandir(root):
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:       # removed meanwhile
            continue
        wanted = (PRIVATE_DIR if stat.S_ISDIR(st.st_mode)
                  else PRIVATE_FILE if stat.S_ISREG(st.st_mode) else None)
        if wanted is not None and stat.S_IMODE(st.st_mode) & ~wanted:
            os.chmod(entry.path, stat.S_IMODE(st.st_mode) & wanted)
