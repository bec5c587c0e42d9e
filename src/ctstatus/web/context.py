"""What the dashboard reads: the ledger, the watcher's store, the running logs, the samples.

Database reads run in worker threads so the shared event loop keeps serving OCSP and CT.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from ctstatus.api.service import IssuanceBackend
from ctstatus.ctlog.service import CtLog
from ctstatus.instance import Instance
from ctstatus.ledger import SerialState
from ctstatus.stack.metrics import Series
from ctstatus.watch.store import WatchStore
from ctstatus.web.ocsp_probe import probe


def names_of(der: bytes | None) -> list[str]:
    """The DNS names and IP addresses a (pre)certificate is for: its SAN, else its CN."""
    if der is None:
        return []
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        certificate = x509.load_der_x509_certificate(der)
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return [
                str(a.value)
                for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            ]
        return [str(name.value) for name in san.value if hasattr(name, "value")]
    except ValueError:
        return []


def name_matches(query: str, name: str) -> bool:
    """Whether ``name`` (from a certificate) answers the search ``query`` (lowercase)."""
    name = name.lower().rstrip(".")
    if query == name:
        return True
    if name.startswith("*.") and "." in query and query.split(".", 1)[1] == name[2:]:
        return True  # a wildcard certificate covers the name asked for
    return query.startswith("*.") and "." in name and name.split(".", 1)[1] == query[2:]


def _iso(ms: int | float | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


@dataclass
class DashboardContext:
    instance: Instance
    backend: IssuanceBackend
    watch_store: WatchStore
    logs: Mapping[str, CtLog]
    series: Series
    status_url: str
    http: httpx.AsyncClient
    demo: bool = False
    _names: dict[int, list[str]] = field(default_factory=dict, repr=False)
    """Names per serial row id, parsed once (certificates do not change)."""

    # -- sampling -----------------------------------------------------------------------

    async def sample_forever(self, interval: float) -> None:
        while True:
            problems = await asyncio.to_thread(self.watch_store.problems, open_only=True)
            self.series.sample(time.monotonic(), len(problems))
            await asyncio.sleep(interval)

    # -- overview -----------------------------------------------------------------------

    def _overview_sync(self) -> dict[str, Any]:
        from ctstatus.ledger.schema import crls, events
        from ctstatus.watch.store import logs as watch_logs

        ledger = self.backend.ledger
        counts, per_issuer, ever_abandoned = self._state_counts()
        open_by_ca: dict[str, int] = {}
        for problem in self.watch_store.problems(open_only=True):
            open_by_ca[problem.scope] = open_by_ca.get(problem.scope, 0) + 1
        issuers = [
            {
                "name": issuer.name,
                "subject": issuer.certificate.subject.rfc4514_string(),
                "not_after": issuer.not_after.date().isoformat(),
                "counts": per_issuer.get(issuer.id, {}),
                "ever_abandoned": ever_abandoned.get(issuer.id, 0),
                "open_problems": open_by_ca.get(issuer.name, 0),
            }
            for issuer in ledger.issuers()
        ]
        now = datetime.now(UTC)
        since = now - timedelta(minutes=30)
        minutes = [(since + timedelta(minutes=i + 1)).strftime("%H:%M") for i in range(30)]
        issued = [0.0] * 30
        abandoned = [0.0] * 30
        with ledger.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.at, events.c.to_state).where(
                    events.c.at >= since,
                    events.c.to_state.in_([SerialState.ISSUED.value, SerialState.ABANDONED.value]),
                )
            ).all()
            crl_rows = conn.execute(
                sa.select(
                    crls.c.issuer_id,
                    crls.c.shard,
                    sa.func.max(crls.c.this_update),
                    sa.func.max(crls.c.crl_number),
                ).group_by(crls.c.issuer_id, crls.c.shard)
            ).all()
            recent_abandoned = conn.execute(
                sa.select(events.c.serial_id, events.c.at, events.c.detail)
                .where(events.c.to_state == SerialState.ABANDONED.value)
                .order_by(events.c.id.desc())
                .limit(8)
            ).all()
        for at, state in rows:
            when = at if at.tzinfo else at.replace(tzinfo=UTC)
            index = min(29, max(0, int((when - since).total_seconds() // 60)))
            (issued if state == SerialState.ISSUED.value else abandoned)[index] += 1
        names = {issuer.id: issuer.name for issuer in ledger.issuers()}
        crl_ages = [
            {
                "issuer": names.get(issuer_id, str(issuer_id)),
                "shard": shard,
                "number": number,
                "this_update": this_update.isoformat(timespec="seconds"),
                "age_s": int(
                    (
                        now
                        - (this_update if this_update.tzinfo else this_update.replace(tzinfo=UTC))
                    ).total_seconds()
                ),
            }
            for issuer_id, shard, this_update, number in crl_rows
        ]
        abandoned_serials = []
        from ctstatus.ledger.schema import serials

        with ledger.engine.connect() as conn:
            for serial_id, at, detail in recent_abandoned:
                row = conn.execute(
                    sa.select(
                        serials.c.serial, serials.c.state, serials.c.cert_der, serials.c.precert_der
                    ).where(serials.c.id == serial_id)
                ).first()
                if row is None:
                    continue
                # Ledger.mark_abandoned journals {"cause": "<exception>: <message>"}.
                why = json.loads(detail).get("cause", "")
                abandoned_serials.append(
                    {
                        "serial": row[0],
                        "at": at.isoformat(timespec="seconds"),
                        "state": row[1],
                        "names": names_of(row[2] or row[3]),
                        "why": str(why),  # whole: the template wraps it
                    }
                )
        with self.watch_store.engine.connect() as conn:
            followed = {
                r.name: r
                for r in conn.execute(
                    sa.select(
                        watch_logs.c.name,
                        watch_logs.c.download_size,
                        watch_logs.c.verified_size,
                        watch_logs.c.verified_sth_ms,
                        watch_logs.c.updated_at,
                    )
                )
            }
        logs = []
        for name, log in self.logs.items():
            size = log.latest_sth.tree_size if log.latest_sth is not None else 0
            seen = next((row for key, row in followed.items() if name in key), None)
            verified = int(seen.verified_size) if seen is not None else 0
            logs.append(
                {
                    "name": name,
                    "operator": log.settings.operator,
                    "size": size,
                    "verified": verified,
                    "lag": max(0, size - verified),
                    "verified_sth": _iso(seen.verified_sth_ms) if seen is not None else None,
                    "faulty": log.faults.faults != type(log.faults.faults)(),
                }
            )
        return {
            "counts": counts,
            "ever_abandoned": sum(ever_abandoned.values()),
            "issuers": issuers,
            "minutes": minutes,
            "issued": issued,
            "abandoned": abandoned,
            "quorum_failures": sum(ever_abandoned.values()),
            "crl_ages": sorted(crl_ages, key=lambda c: (c["issuer"], c["shard"])),
            "abandoned_serials": abandoned_serials,
            "logs": logs,
            "open_problems": sum(open_by_ca.values()),
            "open_problems_by_ca": dict(sorted(open_by_ca.items())),
        }

    def _state_counts(
        self,
    ) -> tuple[dict[str, int], dict[int, dict[str, int]], dict[int, int]]:
        """Serials by state, per issuer and in all, and how many of them were ever abandoned
        (an abandoned precertificate is then revoked by policy, so its state is ``revoked``):
        one query, so the card, the table and the issuers agree."""
        from ctstatus.ledger.schema import events, serials

        was_abandoned = (
            sa.select(events.c.serial_id)
            .where(
                events.c.serial_id == serials.c.id,
                events.c.to_state == SerialState.ABANDONED.value,
            )
            .exists()
        )
        query = sa.select(
            serials.c.issuer_id,
            serials.c.state,
            sa.func.count(),
            sa.func.sum(sa.case((was_abandoned, 1), else_=0)),
        ).group_by(serials.c.issuer_id, serials.c.state)
        counts = {state.value: 0 for state in SerialState}
        per_issuer: dict[int, dict[str, int]] = {}
        ever: dict[int, int] = {}
        with self.backend.ledger.engine.connect() as conn:
            for issuer_id, state, count, abandoned in conn.execute(query):
                counts[state] += int(count)
                mine = per_issuer.setdefault(issuer_id, {s.value: 0 for s in SerialState})
                mine[state] += int(count)
                ever[issuer_id] = ever.get(issuer_id, 0) + int(abandoned or 0)
        return counts, per_issuer, ever

    # -- search by name -----------------------------------------------------------------

    def _names_sync(self, query: str, limit: int) -> list[dict[str, Any]]:
        from ctstatus.ledger.schema import serials

        found: list[dict[str, Any]] = []
        with self.backend.ledger.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    serials.c.id,
                    serials.c.serial,
                    serials.c.state,
                    serials.c.not_after,
                    serials.c.cert_der,
                    serials.c.precert_der,
                )
                .where(
                    serials.c.issuer_id == self.backend.issuer_id,
                    sa.or_(serials.c.cert_der.is_not(None), serials.c.precert_der.is_not(None)),
                )
                .order_by(serials.c.id.desc())
            )
            for row in rows:
                names = self._names.get(row.id)
                if names is None:
                    names = self._names[row.id] = names_of(row.cert_der or row.precert_der)
                if any(name_matches(query, name) for name in names):
                    found.append(
                        {
                            "serial": row.serial,
                            "state": row.state,
                            "not_after": row.not_after.isoformat(timespec="seconds"),
                            "names": names,
                        }
                    )
                    if len(found) >= limit:
                        break
        return found

    async def search_names(self, query: str, limit: int = 200) -> list[dict[str, Any]]:
        """Serials whose certificate or precertificate names ``query`` (a DNS name, any case;
        ``*.example.com`` finds the wildcard and the names it covers; a wildcard certificate
        is found by the names it covers). Newest first, at most ``limit``."""
        return await asyncio.to_thread(self._names_sync, query.strip().lower().rstrip("."), limit)

    async def overview(self) -> dict[str, Any]:
        data = await asyncio.to_thread(self._overview_sync)
        for item in data["abandoned_serials"]:
            answer = await self.ocsp(int(item["serial"], 16))
            item["ocsp"] = answer
        stats = self.series.stats
        latest = self.series.latest()
        data["ocsp"] = {
            "total": stats.ocsp_requests,
            "crl_total": stats.crl_requests,
            "per_s": None if latest is None else latest.ocsp_per_s,
            "p50_ms": None if latest is None else latest.ocsp_p50_ms,
            "p95_ms": None if latest is None else latest.ocsp_p95_ms,
        }
        samples = list(self.series.samples)[-120:]
        data["latency_series"] = [s.ocsp_p95_ms for s in samples]
        data["rate_series"] = [s.ocsp_per_s for s in samples]
        data["problem_series"] = [float(s.open_problems) for s in samples]
        return data

    # -- problems -----------------------------------------------------------------------

    async def problems(self) -> list[dict[str, Any]]:
        found = await asyncio.to_thread(self.watch_store.problems, open_only=False)
        return [p.to_json() for p in found]

    # -- one serial ---------------------------------------------------------------------

    async def ocsp(self, serial: int) -> dict[str, Any]:
        path = urlsplit(self.instance.config.urls.ocsp_url(self.backend.issuer_name)).path
        return await probe(
            self.http, self.status_url, path, self.backend.issuer_certificate, serial
        )

    def _ct_sync(self, serial: int) -> dict[str, Any]:
        from cryptography.hazmat.primitives.serialization import Encoding

        from ctstatus.watch.entries import issuer_key_of
        from ctstatus.watch.store import certs, entries
        from ctstatus.watch.store import logs as watch_logs

        hex_serial = format(serial, "x")
        issuer_key = issuer_key_of(self.backend.issuer_certificate.public_bytes(Encoding.DER))
        with self.watch_store.engine.connect() as conn:
            names = dict(conn.execute(sa.select(watch_logs.c.log_id, watch_logs.c.name)).all())
            seen = [
                {
                    "log": names.get(r.log_id, r.log_id[:12]),
                    "index": r.idx,
                    "kind": "precertificate" if r.precert else "certificate",
                    "at": _iso(r.timestamp_ms),
                    "at_ms": r.timestamp_ms,
                }
                for r in conn.execute(
                    sa.select(
                        entries.c.log_id, entries.c.idx, entries.c.precert, entries.c.timestamp_ms
                    ).where(
                        entries.c.issuer_key == issuer_key,
                        entries.c.serial == hex_serial,
                        entries.c.watched.is_(True),  # our issuer's entries always are
                    )
                )
            ]
            check = conn.execute(
                sa.select(certs.c.last_checked, certs.c.last_result, certs.c.first_seen_ms).where(
                    certs.c.serial == hex_serial
                )
            ).first()
        problems = [p.to_json() for p in self.watch_store.problems() if hex_serial in p.subject]
        history = [
            {
                "at": _iso(row.checked_at * 1000),
                "ocsp": row.ocsp,
                "crl": row.crl,
                "crl_checked": row.crl_checked,
                "findings": row.findings,
            }
            for row in self.watch_store.check_history(hex_serial)
        ]
        return {
            "entries": seen,
            "checks": history,
            "last_checked": None if check is None or check[0] is None else _iso(check[0] * 1000),
            "last_result": None if check is None else check[1],
            "problems": problems,
        }

    async def serial(self, serial: int) -> dict[str, Any] | None:
        record = await self.backend.record(serial)
        if record is None:
            return None
        from ctstatus.api.service import record_json

        journal = await self.backend.journal(serial)
        ct = await asyncio.to_thread(self._ct_sync, serial)
        timeline: list[dict[str, Any]] = []
        for event in journal:
            timeline.append(
                {
                    "at": event["at"],
                    "kind": "ledger",
                    "title": event["action"].replace("_", " "),
                    "state": event["to"],
                    "actor": event["actor"],
                    "detail": event["detail"],
                }
            )
            for sct in event["detail"].get("scts", []) if isinstance(event["detail"], dict) else []:
                if isinstance(sct, dict):
                    timeline.append(
                        {
                            "at": _iso(sct.get("timestamp_ms")) or event["at"],
                            "kind": "sct",
                            "title": f"SCT from {sct.get('log', '?')}",
                            "state": None,
                            "actor": sct.get("operator", ""),
                            "detail": sct,
                        }
                    )
        for entry in ct["entries"]:
            timeline.append(
                {
                    "at": entry["at"],
                    "kind": "ct",
                    "title": f"{entry['kind']} in log {entry['log']} (#{entry['index']})",
                    "state": None,
                    "actor": "watcher",
                    "detail": entry,
                }
            )
        for check in ct["checks"]:
            timeline.append(
                {
                    "at": check["at"],
                    "kind": "watch",
                    "title": f"watcher saw OCSP {check['ocsp']}, CRL {check['crl'] or '-'}",
                    "state": None,
                    "actor": "watcher",
                    "detail": check,
                }
            )
        if ct["last_checked"] and not ct["checks"]:  # checked before the history existed
            timeline.append(
                {
                    "at": ct["last_checked"],
                    "kind": "watch",
                    "title": "watcher checked OCSP and CRL",
                    "state": None,
                    "actor": "watcher",
                    "detail": {"result": ct["last_result"]},
                }
            )
        answer = await self.ocsp(serial)
        timeline.append(
            {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "kind": "ocsp",
                "title": f"OCSP now: {answer.get('cert_status', answer.get('error', '?'))}",
                "state": None,
                "actor": "dashboard (live query)",
                "detail": {k: v for k, v in answer.items() if k != "raw_b64"},
            }
        )
        timeline.sort(key=lambda item: str(item["at"]))
        names = names_of(record.cert_der or record.precert_der)
        return {
            "names": names,
            "record": record_json(record, self.backend.issuer_name),
            "timeline": timeline,
            "ocsp": answer,
            "ct": ct,
        }
