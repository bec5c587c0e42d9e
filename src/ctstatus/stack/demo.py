"""``ctstatus up --demo``: a steady stream of issuance, some of it through failing CT logs.

Every ``fault_every``-th certificate is issued while two of the three logs refuse new
submissions (HTTP 400), so the CT policy cannot be met after the precertificate reached the
third log: the abandon path runs, the precertificate is revoked, and the watcher -- following
that third log -- checks it and sees it revoked. Within a minute the dashboard shows all three.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping

from ctstatus.api.service import IssuanceBackend
from ctstatus.ca.issuance import IssuanceError
from ctstatus.ca.requests import request_for_names
from ctstatus.ctlog.faults import Faults
from ctstatus.ctlog.service import CtLog

log = logging.getLogger("ctstatus.demo")


class Demo:
    """Issues one certificate every ``interval`` seconds until cancelled."""

    def __init__(
        self,
        backend: IssuanceBackend,
        logs: Mapping[str, CtLog],
        *,
        interval: float = 2.0,
        fault_every: int = 4,
        say: Callable[[str], None] = print,
    ) -> None:
        self.backend = backend
        self.logs = logs
        self.interval = interval
        self.fault_every = fault_every
        self.say = say
        self.issued = 0
        self.abandoned = 0

    def _faulty_logs(self) -> list[str]:
        names = sorted(self.logs)
        return names[1:] if len(names) >= 3 else []

    async def one(self, number: int) -> None:
        name = f"demo-{number}-{secrets.token_hex(3)}.example.com"
        request, _key = request_for_names([name], lifetime_days=self.backend.default_lifetime_days)
        faulty = self._faulty_logs() if number % self.fault_every == self.fault_every - 1 else []
        for log_name in faulty:
            self.logs[log_name].faults.replace(Faults(reject_status=400))
        try:
            result = await self.backend.issue(request)
        except IssuanceError as error:
            self.abandoned += 1
            where = f" (logs {', '.join(faulty)} refusing)" if faulty else ""
            message = error.message
            if error.serial is not None and f"serial {error.serial:x}" not in message:
                message += f" (serial {error.serial:x})"
            self.say(f"demo: {name}{where}: {message}")
            return
        finally:
            for log_name in faulty:
                self.logs[log_name].faults.replace(Faults())
        self.issued += 1
        logs = ", ".join(s.log_name for s in result.scts)
        self.say(f"demo: issued {result.serial:x} for {name} (SCTs: {logs})")

    async def run(self) -> None:
        number = 0
        while True:
            try:
                await self.one(number)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("demo issuance failed unexpectedly")
            number += 1
            await asyncio.sleep(self.interval)
