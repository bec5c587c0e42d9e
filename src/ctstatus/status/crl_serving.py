"""Serve the newest published CRL of every shard at the path of its URL, with caching headers.

CRLs are read from the ``crls`` table, so any process can serve what any publisher published.
``max_age`` bounds how long an HTTP cache may keep a CRL, so a revocation reaches relying parties
through caches within the revocation delay plus ``max_age``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine

from ctstatus.status.db import CrlRow, latest_crls, newest_crl_id
from ctstatus.status.http import PKIX_CRL, Headers, cacheable_headers


@dataclass(frozen=True)
class ServedCrl:
    crl: CrlRow
    headers: Headers
    etag: bytes
    next_update: float


def url_path(url: str) -> bytes:
    """The path part of a configured URL, as the server sees it in a request."""
    return (urlsplit(url).path or "/").encode()


class CrlShelf:
    """path -> newest CRL; :meth:`reload` picks up what publishers have stored since."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.by_path: dict[bytes, ServedCrl] = {}
        self.newest_id = -1

    def changed(self) -> bool:
        """Whether a CRL was published since the last reload (one cheap query)."""
        return newest_crl_id(self._engine) != self.newest_id

    def reload(self) -> None:
        rows = latest_crls(self._engine)
        by_path = {}
        for row in sorted(rows, key=lambda r: r.id):
            headers = cacheable_headers(
                PKIX_CRL,
                row.crl_der,
                last_modified=row.this_update.timestamp(),
                expires=row.next_update.timestamp(),
            )
            by_path[url_path(row.url)] = ServedCrl(
                row, headers, dict(headers)[b"etag"], row.next_update.timestamp()
            )
        self.by_path = by_path
        self.newest_id = max((r.id for r in rows), default=0)

    def get(self, path: bytes) -> ServedCrl | None:
        return self.by_path.get(path)
