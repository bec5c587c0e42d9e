"""``ctstatus up --demo``: a steady stream of issuance, some of it through failing CT logs.

Every ``fault_every``-th certificate is issued while two of the three logs refuse new
submissions (HTTP 400), so the CT policy cannot be met after the precertificate reached the
third log: the abandon path runs, the precertificate is revoked, and the watcher -- following
that third log -- checks it and sees it revoked. Within a minute the dashboard shows all three.

That is the CA handling a fault well, which the watcher rightly finds nothing wrong with. So
that the watcher also has something to find, every ``sth_fault_every`` seconds one log (the
last by name) signs its tree heads badly for ``sth_fault_seconds``: the watcher reports
``log.bad_sth`` (critical) within a poll or two, the dashboard counts it as an open problem, and
it is resolved once the log behaves again. Issuance is not affected (SCTs stay valid).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping

from ctstatus.api.service import IssuanceBackend
from ctstatus.ca.issuance import IssuanceError
from ctstatus.ca.requests import request_for_names
from ctstatus.ctlog.faults import Faults, SthFault
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
        sth_fault_every: float = 60.0,
        sth_fault_seconds: float = 15.0,
        say: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.logs = logs
        self.interval = interval
        self.fault_every = fault_every
        self.say = say
        self.sth_fault_every = sth_fault_every
        self.sth_fault_seconds = sth_fault_seconds
        self.clock = clock
        self.started = clock()
        self.issued = 0
        self.abandoned = 0
        self.sth_faulty: str | None = None

    def _sth_fault_log(self) -> str | None:
        """The log that signs bad tree heads now, if the demo's periodic fault is on."""
        names = sorted(self.logs)
        if len(names) < 2 or self.sth_fault_every <= 0:
            return None
        phase = (self.clock() - self.started) % self.sth_fault_every
        on = self.sth_fault_every - self.sth_fault_seconds <= phase
        return names[-1] if on else None

    def _faults(self, log_name: str, *, rejecting: bool) -> Faults:
        sth = SthFault.BAD_SIGNATURE if log_name == self.sth_faulty else None
        return Faults(reject_status=400 if rejecting else None, sth=sth)

    def tick_sth_fault(self) -> None:
        """Turn the periodic bad-tree-head fault on or off, saying so once each way."""
        faulty = self._sth_fault_log()
        if faulty == self.sth_faulty:
            return
        previous, self.sth_faulty = self.sth_faulty, faulty
        for name in (faulty, previous):
            if name is not None:
                self.logs[name].faults.replace(self._faults(name, rejecting=False))
        if faulty is not None:
            self.say(
                f"demo: log {faulty} signs bad tree heads for {self.sth_fault_seconds:.0f} s "
                "(the watcher should report log.bad_sth)"
            )
        else:
            self.say("demo: all logs sign good tree heads again")

    def _faulty_logs(self) -> list[str]:
        names = sorted(self.logs)
        return names[1:] if len(names) >= 3 else []

    async def one(self, number: int) -> None:
        name = f"demo-{number}-{secrets.token_hex(3)}.example.com"
        request, _key = request_for_names([name], lifetime_days=self.backend.default_lifetime_days)
        faulty = self._faulty_logs() if number % self.fault_every == self.fault_every - 1 else []
        for log_name in faulty:
            self.logs[log_name].faults.replace(self._faults(log_name, rejecting=True))
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
                self.logs[log_name].faults.replace(self._faults(log_name, rejecting=False))
        self.issued += 1
        logs = ", ".join(s.log_name for s in result.scts)
        self.say(f"demo: issued {result.serial:x} for {name} (SCTs: {logs})")

    async def run(self) -> None:
        number = 0
        while True:
            try:
                self.tick_sth_fault()
                await self.one(number)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("demo issuance failed unexpectedly")
            number += 1
            await asyncio.sleep(self.interval)
