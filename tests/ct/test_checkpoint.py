"""static-ct-api checkpoints: real notes from real logs, round trips, and every refusal."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from ctstatus.ct import (
    CheckpointVerificationError,
    DecodeError,
    FailureReason,
    SignedTreeHead,
)
from ctstatus.ct.checkpoint import (
    Checkpoint,
    NoteSignature,
    RFC6962NoteSignature,
    SignedNote,
    checkpoint_from_sth,
    rfc6962_key_id,
    sign_checkpoint,
    verify_checkpoint,
)
from ctstatus.ct.sct import log_id, verify_tree_head
from ctstatus.keys.signer import InProcessSigner

ROME = "rome.ct.filippo.io/2024h1"
ARGON = "ct.googleapis.com/logs/us1/argon2024"


def reason_of(check: Callable[[], object]) -> FailureReason:
    with pytest.raises(CheckpointVerificationError) as caught:
        check()
    return caught.value.reason


def test_key_ids_match_published_verifier_keys(
    real: dict[str, Any], load_key: Callable[[str], Any]
) -> None:
    for name, origin in [("filippo_rome2024h1", ROME), ("google_argon2024", ARGON)]:
        key = load_key(real["logs"][name]["key"])
        assert rfc6962_key_id(origin, log_id(key)).hex() == real["checkpoints"][name]["key_id"]


def test_real_rome_checkpoint_verifies_and_re_encodes_identically(
    real: dict[str, Any], load_key: Callable[[str], Any]
) -> None:
    note = real["checkpoints"]["filippo_rome2024h1"]["note"]
    key = load_key(real["logs"]["filippo_rome2024h1"]["key"])
    checkpoint, sth = verify_checkpoint(note, ROME, key)
    assert checkpoint.origin == ROME
    assert checkpoint.tree_size == 115474666
    assert base64.b64encode(checkpoint.root_hash).decode() == (
        "2q1K6aiIJR+F7TyhiWOghoWOjY0/3dVBLsBbAvB4xCw="
    )
    verify_tree_head(sth, key)
    assert checkpoint_from_sth(sth, ROME, log_id(key)).decode() == note
    assert verify_checkpoint(note.encode(), ROME, key) == (checkpoint, sth)


def test_real_rome_checkpoint_refuses_any_change(
    real: dict[str, Any], load_key: Callable[[str], Any]
) -> None:
    note: str = real["checkpoints"]["filippo_rome2024h1"]["note"]
    key = load_key(real["logs"]["filippo_rome2024h1"]["key"])
    bigger = note.replace("115474666", "115474667")
    assert reason_of(lambda: verify_checkpoint(bigger, ROME, key)) is FailureReason.BAD_SIGNATURE
    other_root = note.replace("2q1K6", "2q1K7")
    assert reason_of(lambda: verify_checkpoint(other_root, ROME, key)) is (
        FailureReason.BAD_SIGNATURE
    )
    # The origin line is not signed by the STH, but it must be the log we asked for.
    renamed = note.replace(ROME, "rome.ct.filippo.io/2024h2")
    assert reason_of(lambda: verify_checkpoint(renamed, ROME, key)) is (
        FailureReason.ORIGIN_MISMATCH
    )
    assert reason_of(lambda: verify_checkpoint(renamed, "rome.ct.filippo.io/2024h2", key)) is (
        FailureReason.NO_KNOWN_SIGNATURE
    )
    assert reason_of(lambda: verify_checkpoint("B0rked" + note, ROME, key)) is (
        FailureReason.ORIGIN_MISMATCH
    )
    with pytest.raises(DecodeError):
        verify_checkpoint(note.replace("\n", "\r\n"), ROME, key)
    _, sth = verify_checkpoint(note, ROME, key)
    assert reason_of(lambda: verify_checkpoint(note, ROME, key, now_ms=sth.timestamp - 1)) is (
        FailureReason.FUTURE_TIMESTAMP
    )


def test_real_argon_sth_converts_to_a_checkpoint_and_back(
    real: dict[str, Any], load_key: Callable[[str], Any]
) -> None:
    key = load_key(real["logs"]["google_argon2024"]["key"])
    sth = SignedTreeHead.from_json(real["sths"]["google_argon2024"])
    note = checkpoint_from_sth(sth, ARGON, log_id(key))
    text, _, signature_line = note.decode().partition("\n\n")
    assert text.split("\n") == [ARGON, "1267285836", "SHySaYoaGIV5oCMANTytRfUjfzXb7wvO9xQiGkDJlfQ="]
    assert signature_line.startswith(f"\u2014 {ARGON} fetJ0A")  # key ID 7deb49d0
    assert verify_checkpoint(note, ARGON, key)[1] == sth


def test_witness_and_unknown_signatures_are_ignored(ec_log: InProcessSigner) -> None:
    note = sign_checkpoint(ec_log, "log.example/1", 5, 1000, b"\x01" * 32)
    parsed = SignedNote.decode(note)
    witness = NoteSignature("witness.example/w1", b"\x00\x01\x02\x03", b"\x04" * 72)
    same_name_other_id = NoteSignature("log.example/1", b"\xff\xff\xff\xff", b"junk")
    extended = SignedNote(parsed.text, (witness, *parsed.signatures, same_name_other_id))
    checkpoint, sth = verify_checkpoint(extended.encode(), "log.example/1", ec_log.public_key())
    assert (checkpoint.tree_size, sth.timestamp, sth.root_hash) == (5, 1000, b"\x01" * 32)
    only_witness = SignedNote(parsed.text, (witness,))
    assert (
        reason_of(
            lambda: verify_checkpoint(only_witness.encode(), "log.example/1", ec_log.public_key())
        )
        is FailureReason.NO_KNOWN_SIGNATURE
    )


def test_a_bad_signature_from_the_log_rejects_the_note(ec_log: InProcessSigner) -> None:
    good = SignedNote.decode(sign_checkpoint(ec_log, "log.example/1", 5, 1000, b"\x01" * 32))
    body = RFC6962NoteSignature.decode(good.signatures[0].signature)
    other = RFC6962NoteSignature(body.timestamp + 1, body.signature)
    forged = NoteSignature("log.example/1", good.signatures[0].key_id, other.encode())
    note = SignedNote(good.text, (*good.signatures, forged)).encode()
    assert reason_of(lambda: verify_checkpoint(note, "log.example/1", ec_log.public_key())) is (
        FailureReason.BAD_SIGNATURE
    )
    truncated = NoteSignature("log.example/1", good.signatures[0].key_id, b"\x00" * 9)
    note = SignedNote(good.text, (truncated,)).encode()
    assert reason_of(lambda: verify_checkpoint(note, "log.example/1", ec_log.public_key())) is (
        FailureReason.MALFORMED_INPUT
    )


def test_extension_lines_are_refused_for_rfc6962_signatures(ec_log: InProcessSigner) -> None:
    note = SignedNote.decode(sign_checkpoint(ec_log, "log.example/1", 5, 1000, b"\x01" * 32))
    text = note.text + "extension line\n"
    assert Checkpoint.from_text(text).extensions == ("extension line",)
    extended = SignedNote(text, note.signatures).encode()
    assert reason_of(lambda: verify_checkpoint(extended, "log.example/1", ec_log.public_key())) is (
        FailureReason.EXTENSION_LINES
    )


@pytest.mark.parametrize("log_name", ["ec_log", "rsa_log"])
def test_sign_and_verify_round_trip(log_name: str, request: pytest.FixtureRequest) -> None:
    log: InProcessSigner = request.getfixturevalue(log_name)
    note = sign_checkpoint(log, "example.com/log", 0, 42, b"\x02" * 32)
    checkpoint, sth = verify_checkpoint(note, "example.com/log", log.public_key())
    assert checkpoint == Checkpoint("example.com/log", 0, b"\x02" * 32)
    verify_tree_head(sth, log.public_key())


def test_checkpoint_text_format() -> None:
    checkpoint = Checkpoint("example.com/behind-the-sofa", 20852163, bytes(32))
    assert checkpoint.to_text() == (
        "example.com/behind-the-sofa\n20852163\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    )
    assert Checkpoint.from_text(checkpoint.to_text()) == checkpoint


@pytest.mark.parametrize(
    "text",
    [
        "origin\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  # no final newline
        "origin\n5\n",  # two lines
        "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # empty origin
        "origin\n05\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # leading zero
        "origin\n+5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # sign
        "origin\n5_0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # Python int() syntax
        "origin\n\u0665\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # Arabic-Indic digit
        "origin\n18446744073709551616\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # 2^64
        "origin\n5\nAAAA\n",  # short hash
        "origin\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",  # empty extension line
    ],
)
def test_malformed_checkpoint_text(text: str) -> None:
    with pytest.raises(DecodeError):
        Checkpoint.from_text(text)


SIG = "\u2014 name AAAAAAE=\n"


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("text\n" + SIG, "no blank line"),
        ("text\n\n", "end with a newline|em dash"),
        ("text\n\n\u2014 name AAAAAAE=", "end with a newline"),
        ("text\n\n- name AAAAAAE=\n", "em dash"),
        ("text\n\n\u2014 na me AAAAAAE=\n", "not '"),
        ("text\n\n\u2014 na+me AAAAAAE=\n", "invalid key name"),
        ("text\n\n\u2014  AAAAAAE=\n", "invalid key name"),
        ("text\n\n\u2014 name AAAAAA==\n", "no signature after"),
        ("text\n\n\u2014 name AAAAAAE\n", "invalid base64"),
        ("te\x01xt\n\n" + SIG, "control characters"),
        ("text\r\n\n" + SIG, "control characters"),
        ("text\n\n" + SIG * 101, "more than 100"),
    ],
)
def test_malformed_notes(note: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        SignedNote.decode(note)


def test_note_byte_level_checks() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        SignedNote.decode(b"\xff\n\n" + SIG.encode())
    with pytest.raises(DecodeError, match="UTF-8"):
        SignedNote.decode("\ud800\n\n" + SIG)
    with pytest.raises(DecodeError, match="exceeds"):
        SignedNote.decode(b"x" * 100 + b"\n\n" + SIG.encode(), max_size=64)
    parsed = SignedNote.decode("a\n\nb\n\n" + SIG)
    assert parsed.text == "a\n\nb\n"  # the last blank line separates the signatures
    assert parsed.signatures == (NoteSignature("name", b"\x00\x00\x00\x00", b"\x01"),)
    assert SignedNote.decode(parsed.encode()) == parsed


def test_origin_must_be_a_valid_key_name(ec_log: InProcessSigner) -> None:
    from ctstatus.ct import EncodeError

    for origin in ("", "has space", "plus+sign"):
        with pytest.raises(EncodeError, match="invalid key name"):
            sign_checkpoint(ec_log, origin, 0, 0, bytes(32))
