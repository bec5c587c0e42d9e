"""static-ct-api checkpoints: signed notes carrying an RFC 6962 STH signature.

A checkpoint (c2sp.org/tlog-checkpoint) is note text of origin, tree size and base64 root hash,
one per line. A signed note (c2sp.org/signed-note) appends a blank line and signature lines
``— <key name> <base64(4-byte key ID || signature)>``. static-ct-api logs sign with note
signature type 0x05: the key name is the origin, the key ID is the first 4 bytes of
SHA-256(key name || 0x0A || 0x05 || LogID), and the signature is ``RFC6962NoteSignature {uint64
timestamp; DigitallySigned signature}`` where the signature is the log's ordinary STH signature.
So a get-sth response and a checkpoint convert into each other without the private key, and the
origin line itself is not signed (the STH does not cover the log's identity).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ctstatus.ct.b64 import b64decode, b64encode
from ctstatus.ct.errors import (
    CheckpointVerificationError,
    DecodeError,
    EncodeError,
    FailureReason,
)
from ctstatus.ct.merkle import HASH_SIZE
from ctstatus.ct.sct import log_id, sign_tree_head, verify_digitally_signed
from ctstatus.ct.structures import MAX_UINT64, DigitallySigned, SignedTreeHead
from ctstatus.ct.tls import Reader, Writer
from ctstatus.keys.signer import PublicKey, Signer

RFC6962_SIGNATURE_TYPE = 0x05
KEY_ID_SIZE = 4
MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100
_EM_DASH_PREFIX = "\u2014 "
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


def _check_key_name(name: str, error: type[ValueError] = DecodeError) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise error(f"note: invalid key name {name!r} (empty, or has a space or '+')")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, and the signature bytes."""

    key_name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_SIZE:
            raise EncodeError(f"key_id must be {KEY_ID_SIZE} bytes")

    def line(self) -> str:
        return f"{_EM_DASH_PREFIX}{self.key_name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class SignedNote:
    """A signed note: ``text`` (ending in a newline) and one or more signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        if not self.text.endswith("\n"):
            raise EncodeError("note text must end with a newline")
        if not self.signatures:
            raise EncodeError("a signed note needs at least one signature")
        lines = "".join(s.line() for s in self.signatures)
        return f"{self.text}\n{lines}".encode()

    @classmethod
    def decode(cls, data: bytes | str, *, max_size: int = MAX_NOTE_SIZE) -> SignedNote:
        """Parse a signed note; malformed notes are a :class:`DecodeError` (nothing verified)."""
        if isinstance(data, str):
            try:
                data = data.encode()
            except UnicodeEncodeError:
                raise DecodeError("note: not valid UTF-8") from None
        if not isinstance(data, bytes):
            raise DecodeError(f"note: expected bytes, got {type(data).__name__}")
        if len(data) > max_size:
            raise DecodeError(f"note: {len(data)} bytes exceeds {max_size}")
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("note: not valid UTF-8") from None
        if any(ord(c) < 0x20 and c != "\n" for c in message):
            raise DecodeError("note: control characters other than newline")
        split = message.rfind("\n\n")
        if split < 0:
            raise DecodeError("note: no blank line before the signatures")
        text, block = message[: split + 1], message[split + 2 :]
        if not block.endswith("\n"):
            raise DecodeError("note: signature block does not end with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise DecodeError(f"note: more than {MAX_SIGNATURES} signatures")
        signatures = tuple(_parse_signature_line(line, i) for i, line in enumerate(lines))
        return cls(text, signatures)


def _parse_signature_line(line: str, index: int) -> NoteSignature:
    if not line.startswith(_EM_DASH_PREFIX):
        raise DecodeError(f"note: signature line {index} does not start with an em dash")
    parts = line[len(_EM_DASH_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise DecodeError(f"note: signature line {index} is not '— <name> <signature>'")
    name, encoded = parts
    _check_key_name(name)
    raw = b64decode(encoded, f"note signature {index}")
    if len(raw) <= KEY_ID_SIZE:
        raise DecodeError(f"note: signature {index} has no signature after its key ID")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


@dataclass(frozen=True)
class Checkpoint:
    """The note text of a tlog checkpoint: origin, size, root hash, optional extension lines."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def to_text(self) -> str:
        if not self.origin or "\n" in self.origin:
            raise EncodeError("checkpoint origin must be one non-empty line")
        if not 0 <= self.tree_size <= MAX_UINT64:
            raise EncodeError("checkpoint tree size must be a uint64")
        if len(self.root_hash) != HASH_SIZE:
            raise EncodeError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise EncodeError("checkpoint extension lines must be non-empty single lines")
        lines = [self.origin, str(self.tree_size), b64encode(self.root_hash), *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise DecodeError("checkpoint: text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise DecodeError(f"checkpoint: {len(lines)} lines, need at least 3")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise DecodeError("checkpoint: empty origin line")
        if not _TREE_SIZE.fullmatch(size_text) or int(size_text) > MAX_UINT64:
            raise DecodeError(f"checkpoint: bad tree size {size_text[:30]!r}")
        root_hash = b64decode(root_text, "checkpoint root hash", length=HASH_SIZE)
        if any(not line for line in extensions):
            raise DecodeError("checkpoint: empty extension line")
        return cls(origin, int(size_text), root_hash, tuple(extensions))


@dataclass(frozen=True)
class RFC6962NoteSignature:
    """The body of a type-0x05 note signature: the STH timestamp and its DigitallySigned."""

    timestamp: int
    signature: DigitallySigned

    def encode(self) -> bytes:
        writer = Writer().uint64(self.timestamp, "timestamp")
        self.signature.write(writer)
        return writer.to_bytes()

    @classmethod
    def decode(cls, data: bytes) -> RFC6962NoteSignature:
        reader = Reader(data, "RFC6962NoteSignature")
        timestamp = reader.uint64("timestamp")
        signature = DigitallySigned.read(reader)
        reader.done()
        return cls(timestamp, signature)


def rfc6962_key_id(key_name: str, log_id_bytes: bytes) -> bytes:
    """SHA-256(key name || 0x0A || 0x05 || LogID)[:4], the key ID of a static-ct-api log."""
    if len(log_id_bytes) != HASH_SIZE:
        raise EncodeError("log ID must be 32 bytes")
    data = key_name.encode() + b"\n" + bytes([RFC6962_SIGNATURE_TYPE]) + log_id_bytes
    return hashlib.sha256(data).digest()[:KEY_ID_SIZE]


def checkpoint_from_sth(sth: SignedTreeHead, origin: str, log_id_bytes: bytes) -> bytes:
    """The checkpoint for an RFC 6962 STH (no private key needed: the STH signature is reused)."""
    _check_key_name(origin, EncodeError)
    text = Checkpoint(origin, sth.tree_size, sth.root_hash).to_text()
    body = RFC6962NoteSignature(sth.timestamp, sth.signature).encode()
    signature = NoteSignature(origin, rfc6962_key_id(origin, log_id_bytes), body)
    return SignedNote(text, (signature,)).encode()


def sign_checkpoint(
    signer: Signer, origin: str, tree_size: int, timestamp: int, root_hash: bytes
) -> bytes:
    """Sign an STH with ``signer`` and serve it as the checkpoint of the log named ``origin``."""
    sth = sign_tree_head(signer, tree_size, timestamp, root_hash)
    return checkpoint_from_sth(sth, origin, log_id(signer.public_key()))


def verify_checkpoint(
    note: bytes | str,
    origin: str,
    log_public_key: PublicKey,
    *,
    now_ms: int | None = None,
) -> tuple[Checkpoint, SignedTreeHead]:
    """Verify a static-ct-api checkpoint for the log ``origin`` with ``log_public_key``.

    Signatures by other keys (witnesses, other algorithms) are ignored, as the spec requires;
    at least one must be the log's, and every one of the log's must verify. Returns the
    checkpoint and the equivalent RFC 6962 STH. A malformed note is a :class:`DecodeError`.
    """
    signed = SignedNote.decode(note)
    checkpoint = Checkpoint.from_text(signed.text)
    if checkpoint.origin != origin:
        raise CheckpointVerificationError(
            FailureReason.ORIGIN_MISMATCH,
            f"checkpoint origin {checkpoint.origin!r} is not {origin!r}",
        )
    key_id = rfc6962_key_id(origin, log_id(log_public_key))
    ours = [s for s in signed.signatures if s.key_name == origin and s.key_id == key_id]
    if not ours:
        raise CheckpointVerificationError(
            FailureReason.NO_KNOWN_SIGNATURE,
            f"no signature by {origin} with key ID {key_id.hex()}",
        )
    if checkpoint.extensions:
        raise CheckpointVerificationError(
            FailureReason.EXTENSION_LINES,
            "an RFC 6962-signed checkpoint must not have extension lines",
        )
    heads: list[SignedTreeHead] = []
    for signature in ours:
        try:
            body = RFC6962NoteSignature.decode(signature.signature)
        except DecodeError as exc:
            raise CheckpointVerificationError(FailureReason.MALFORMED_INPUT, str(exc)) from exc
        sth = SignedTreeHead(
            checkpoint.tree_size, body.timestamp, checkpoint.root_hash, body.signature
        )
        if now_ms is not None and sth.timestamp > now_ms:
            raise CheckpointVerificationError(
                FailureReason.FUTURE_TIMESTAMP,
                f"checkpoint timestamp {sth.timestamp} is after now ({now_ms})",
            )
        verify_digitally_signed(
            body.signature, log_public_key, sth.signature_input(), CheckpointVerificationError
        )
        heads.append(sth)
    return checkpoint, heads[0]
