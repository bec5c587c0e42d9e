"""``ctstatus ocsp export DIR``: every current response as a file, for a CDN or nginx to serve.

Two layouts of the same responses:

* ``DIR/<issuerKeyHash hex>/<serial hex>`` -- one file per CertID hash (the key hash's length
  tells SHA-1 from SHA-256), for an edge function that parses the request;
* with ``get_paths``: ``DIR/get/<base64 of the canonical GET request>`` -- the exact path a
  client without a nonce requests (``/`` inside base64 becomes a directory), so stock nginx can
  ``try_files $uri @responder`` and fall back to the live responder for anything else.

Only responses that still hold are written: signed for a state with the same answer as the
ledger's current one and not expired; others are re-signed when a key is available, else left
out (the live responder answers them). Files are replaced atomically, their mtime is thisUpdate,
and files of serials that no longer get a response are removed.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import Engine

from ctstatus.ledger import Issuer, SerialRecord
from ctstatus.status.answer import ANSWERED_STATES, same_answer
from ctstatus.status.db import StoredResponse, stored_for_export, upsert_responses
from ctstatus.status.issuers import cert_id_hashes
from ctstatus.status.ocsp_response import HASHES
from ctstatus.status.presign import NoSigner, Presigner

BATCH = 1000
MARKER = ".ctstatus-ocsp-export"


@dataclass
class ExportReport:
    written: int = 0
    resigned: int = 0
    skipped: int = 0
    removed: int = 0


def canonical_get_path(issuer: Issuer, hash_name: str, serial: int) -> str:
    """The base64 of the nonce-less request for this CertID, as clients put it in a GET URL."""
    hashes = cert_id_hashes(issuer, hash_name)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(hashes.name_hash, hashes.key_hash, serial, HASHES[hash_name])
        .build()
    )
    return base64.b64encode(request.public_bytes(Encoding.DER)).decode()


def _write(path: Path, data: bytes, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.utime(tmp, (mtime, mtime))
    tmp.replace(path)


def export_responses(
    engine: Engine,
    issuers: list[Issuer],
    directory: Path,
    *,
    now: datetime,
    presigner: Presigner | None,
    get_paths: bool = False,
) -> ExportReport:
    """Write every current response of ``issuers`` under ``directory``.

    ``directory`` must be new, empty, or an earlier export (it holds the marker file): files that
    are not current responses are deleted from it, so it must never be anything else.
    """
    from ctstatus.errors import UserError

    marker = directory / MARKER
    if directory.exists() and any(directory.iterdir()) and not marker.exists():
        raise UserError(
            f"{directory} is not empty and not an earlier OCSP export",
            "export into a new or empty directory (stale files in it are deleted)",
        )
    directory.mkdir(parents=True, exist_ok=True)
    marker.touch()
    report = ExportReport()
    written: set[Path] = set()
    for issuer in issuers:
        after = 0
        while True:
            rows = stored_for_export(engine, issuer.id, after, BATCH)
            if not rows:
                break
            after = rows[-1][0].id
            fresh: list[StoredResponse] = []
            for record, stored in rows:
                response = _current(record, stored, now)
                if response is None and record.state in ANSWERED_STATES and presigner:
                    try:
                        response = presigner.sign(issuer, record, stored.hash_algorithm, now)
                    except NoSigner:
                        response = None
                    else:
                        fresh.append(response)
                        report.resigned += 1
                if response is None:
                    report.skipped += 1
                    continue
                mtime = response.this_update.timestamp()
                key_hash = cert_id_hashes(issuer, response.hash_algorithm).key_hash.hex()
                path = directory / key_hash / format(record.serial, "x")
                _write(path, response.response_der, mtime)
                written.add(path)
                if get_paths:
                    encoded = canonical_get_path(issuer, response.hash_algorithm, record.serial)
                    path = directory / "get" / encoded
                    _write(path, response.response_der, mtime)
                    written.add(path)
                report.written += 1
            upsert_responses(engine, fresh)
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path not in written and not path.name.startswith("."):
            path.unlink()
            report.removed += 1
    return report


def _current(record: SerialRecord, stored: StoredResponse, now: datetime) -> StoredResponse | None:
    if record.state not in ANSWERED_STATES or not same_answer(stored.serial_state, record.state):
        return None
    if not stored.this_update <= now < stored.refresh_at:
        return None
    return stored
