"""age keys: the decryption keys of SOPS-encrypted manifests, read without ever showing them.

An age X25519 identity is `AGE-SECRET-KEY-1...` (bech32 of 32 random bytes); its recipient,
the public key files are encrypted for, is `age1...` (bech32 of the X25519 public key). A key
file holds one identity a line, `#` comments allowed: what `age-keygen -o key.txt` writes
(and `gitops age-keygen`, made here with the `cryptography` package).

Where keys come from (KeySource): a key file (`--decryption-key-file`, GITOPS_AGE_KEY_FILE)
that must be a regular file its owner alone may read, and/or GITOPS_AGE_KEY holding the key
itself. Keys are never put in an error message, a log line or a repr: errors name the file
or the variable, and a line by its number.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone

from gitops.errors import GitopsError

AGE_KEY_ENV = "GITOPS_AGE_KEY"
AGE_KEY_FILE_ENV = "GITOPS_AGE_KEY_FILE"
KEY_FILE_FLAG = "--decryption-key-file"
SECRET_PREFIX = "AGE-SECRET-KEY-1"
_SECRET_HRP, _PUBLIC_HRP = "age-secret-key-", "age"
MAX_KEY_FILE_BYTES = 64 * 1024
HOW_TO_GIVE = f"{KEY_FILE_FLAG} FILE, {AGE_KEY_FILE_ENV} or {AGE_KEY_ENV}"


class DecryptionKeyError(GitopsError):
    """A decryption key that cannot be used; the message names where it came from, never
    its content."""


# -- bech32 (BIP 173), as age encodes its keys ------------------------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            check ^= gen if (top >> i) & 1 else 0
    return check


def _expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    mask = (1 << to_bits) - 1
    for value in data:
        acc = acc << from_bits | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append(acc >> bits & mask)
    if pad and bits:
        out.append(acc << (to_bits - bits) & mask)
    elif not pad and (bits >= from_bits or acc << (to_bits - bits) & mask):
        raise ValueError("bad padding")
    return out


def bech32_encode(hrp: str, payload: bytes) -> str:
    data = _regroup(payload, 8, 5, pad=True)
    polymod = _polymod(_expand(hrp) + data + [0] * 6) ^ 1
    checksum = [polymod >> 5 * (5 - i) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(human-readable part, payload); ValueError if `text` is not valid bech32."""
    if text != text.lower() and text != text.upper():
        raise ValueError("mixed case")
    text = text.lower()
    hrp, sep, rest = text.rpartition("1")
    if not sep or not hrp or len(rest) < 6 or any(c not in _CHARSET for c in rest):
        raise ValueError("not bech32")
    data = [_CHARSET.index(c) for c in rest]
    if _polymod(_expand(hrp) + data) != 1:
        raise ValueError("bad checksum")
    return hrp, bytes(_regroup(data[:-6], 5, 8, pad=False))


# -- keys --------------------------------------------------------------------------------------

def recipient_of(identity: str) -> str:
    """The age1... public key of an AGE-SECRET-KEY-1... identity (ValueError if it is not one)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    hrp, raw = bech32_decode(identity)
    if hrp != _SECRET_HRP or len(raw) != 32:
        raise ValueError("not an age X25519 identity")
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    return bech32_encode(_PUBLIC_HRP, public)


def generate() -> tuple[str, str]:
    """A new (identity, recipient) pair, as age-keygen makes one."""
    identity = bech32_encode(_SECRET_HRP, os.urandom(32)).upper()
    return identity, recipient_of(identity)


def key_file_text(identity: str, recipient: str, now: datetime | None = None) -> str:
    """A key file in age-keygen's layout."""
    created = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"# created: {created}\n# public key: {recipient}\n{identity}\n"


@dataclass(frozen=True)
class AgeKeys:
    identities: tuple[str, ...] = field(repr=False)
    recipients: tuple[str, ...]

    def key_file(self) -> bytes:
        """The identities as a key file sops reads (SOPS_AGE_KEY_FILE)."""
        return "".join(f"{identity}\n" for identity in self.identities).encode()


def parse_keys(text: str, origin: str) -> AgeKeys:
    """The identities of a key file's text; `origin` names it in errors (a path, a variable).
    Lines are named by number only: a key must not reach an error message."""
    identities: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-----BEGIN"):
            raise DecryptionKeyError(f"{origin} holds a PEM/SSH key; SOPS files are decrypted "
                                     "here with age keys (AGE-SECRET-KEY-1..., from age-keygen)")
        if line.upper().startswith("AGE-PLUGIN-"):
            raise DecryptionKeyError(f"{origin}, line {number}: age plugin identities are not "
                                     "supported; use an X25519 key (age-keygen)")
        try:
            recipient_of(line)
        except ValueError:
            raise DecryptionKeyError(f"{origin}, line {number}: not an age secret key "
                                     f"({SECRET_PREFIX}...)") from None
        identities.append(line.upper())
    if not identities:
        raise DecryptionKeyError(f"{origin} holds no age secret key ({SECRET_PREFIX}...)")
    return AgeKeys(tuple(identities), tuple(recipient_of(i) for i in identities))


def read_key_file(path: str) -> str:
    """The text of a key file its owner alone may read, else DecryptionKeyError (as ssh
    refuses a private key others can read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    except OSError as exc:
        raise DecryptionKeyError(f"decryption key file {path}: {exc.strerror or exc}") from None
    st = os.fstat(fd)                   # the file opened, not a name swapped meanwhile
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DecryptionKeyError(f"decryption key file {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_uid != os.geteuid():
            raise DecryptionKeyError(
                f"decryption key file {path} belongs to uid {st.st_uid}, not to the agent's "
                f"user (uid {os.geteuid()}); it must be its owner's alone")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise DecryptionKeyError(
                f"decryption key file {path} is readable by others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); make it owner-only: chmod 600 {path}")
        if st.st_size > MAX_KEY_FILE_BYTES:
            raise DecryptionKeyError(f"decryption key file {path} is larger than "
                                     f"{MAX_KEY_FILE_BYTES // 1024} KiB: not a key file")
        raw = f.read(MAX_KEY_FILE_BYTES + 1)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionKeyError(f"decryption key file {path} is not text") from None


@dataclass(frozen=True)
class KeySource:
    """Where the agent's age keys come from; read again at each render (a rotated key file
    is used from the next sync on), checked each time."""
    file: str = ""
    value: str = field(default="", repr=False)      # GITOPS_AGE_KEY's content

    def __bool__(self) -> bool:
        return bool(self.file or self.value)

    def load(self) -> AgeKeys:
        keys: list[AgeKeys] = []
        if self.file:
            keys.append(parse_keys(read_key_file(self.file), f"decryption key file {self.file}"))
        if self.value.strip():
            keys.append(parse_keys(self.value, AGE_KEY_ENV))
        if not keys:
            raise DecryptionKeyError(f"no decryption key given ({HOW_TO_GIVE})")
        identities = tuple(dict.fromkeys(i for k in keys for i in k.identities))
        return AgeKeys(identities, tuple(recipient_of(i) for i in identities))

    @classmethod
    def from_environment(cls, file: str = "", environ: dict | None = None) -> KeySource:
        """The key file given (else GITOPS_AGE_KEY_FILE) and GITOPS_AGE_KEY."""
        env = os.environ if environ is None else environ
        return cls(file or env.get(AGE_KEY_FILE_ENV, ""), env.get(AGE_KEY_ENV, ""))
