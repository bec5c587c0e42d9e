"""A small authoritative DNS server on loopback for tests and ``ctstatus up --demo``.

It lives in the package, not under tests/, because a machine with no internet has no DNS that
answers CAA, and a demo CA must still look CAA up (a failed lookup refuses issuance): the demo
points ``dns_servers`` here. It answers A, AAAA, TXT, CAA and CNAME (chasing CNAMEs inside its
own data, as an authoritative server does), NXDOMAIN for names it does not know, and on request
SERVFAIL, REFUSED or silence for a name (fault injection). UDP and TCP on the same port; an
answer too large for UDP is sent truncated (TC) so resolvers retry over TCP.

Records change at run time through the Python API (:class:`Zone`) or a tiny HTTP control on
loopback, so a certbot ``--manual-auth-hook`` can add its TXT record::

    python -m ctstatus.acme.validation.testdns add --control http://127.0.0.1:PORT \\
        TXT "_acme-challenge.$CERTBOT_DOMAIN" "$CERTBOT_VALIDATION"

Control API (JSON bodies): ``POST /records`` {"name", "type", "value", "ttl"?} adds;
``DELETE /records`` {"name", "type"?, "value"?} removes; ``POST /faults`` {"name", "fault"}
sets SERVFAIL|REFUSED|DROP (null clears); ``GET /records`` lists. Not a production server:
no zones, no SOA, no DNSSEC, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import socket
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

TYPES = ("A", "AAAA", "TXT", "CAA", "CNAME")
FAULTS = ("SERVFAIL", "REFUSED", "DROP")
_MAX_CHASE = 8
_MAX_CONTROL_BODY = 65536


@dataclass(frozen=True)
class Record:
    """One resource record as given (TXT value is the string itself, others presentation)."""

    name: str
    type: str
    value: str
    ttl: int = 60


def _name(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".").lower() + ".")


def _rdata(rtype: str, value: str) -> dns.rdata.Rdata:
    if rtype == "TXT":
        return dns.rdtypes.ANY.TXT.TXT(
            dns.rdataclass.IN,
            dns.rdatatype.TXT,
            [value.encode()[i : i + 255] for i in range(0, max(len(value.encode()), 1), 255)],
        )
    return dns.rdata.from_text(
        dns.rdataclass.IN,
        dns.rdatatype.from_text(rtype),
        value,
        origin=dns.name.root,
        relativize=False,
    )


class Zone:
    """The server's records and faults; safe to change from any thread while it serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._faults: dict[dns.name.Name, str] = {}

    def add(self, name: str, rtype: str, value: str, ttl: int = 60) -> None:
        """Add one record; a malformed value raises ValueError here, not at query time."""
        rtype = rtype.upper()
        if rtype not in TYPES:
            raise ValueError(f"record type {rtype!r} is not one of {', '.join(TYPES)}")
        try:
            _name(name)
            _rdata(rtype, value)
        except (dns.exception.DNSException, ValueError) as e:
            raise ValueError(f"bad {rtype} record {name} {value!r}: {e}") from e
        if rtype in ("A", "AAAA"):
            ipaddress.ip_address(value)
        with self._lock:
            self._records.append(Record(name.rstrip(".").lower(), rtype, value, ttl))

    def remove(self, name: str, rtype: str | None = None, value: str | None = None) -> int:
        """Remove matching records (all types/values when not given); returns how many."""
        key = name.rstrip(".").lower()
        with self._lock:
            keep = [
                r
                for r in self._records
                if not (
                    r.name == key
                    and (rtype is None or r.type == rtype.upper())
                    and (value is None or r.value == value)
                )
            ]
            removed = len(self._records) - len(keep)
            self._records = keep
        return removed

    def fault(self, name: str, fault: str | None) -> None:
        """Make queries for ``name`` answer SERVFAIL or REFUSED, or get no answer (DROP)."""
        if fault is not None and fault.upper() not in FAULTS:
            raise ValueError(f"fault {fault!r} is not one of {', '.join(FAULTS)}")
        with self._lock:
            if fault is None:
                self._faults.pop(_name(name), None)
            else:
                self._faults[_name(name)] = fault.upper()

    def clear(self) -> None:
        """Forget every record and fault."""
        with self._lock:
            self._records.clear()
            self._faults.clear()

    def records(self) -> list[Record]:
        """A copy of the records, in the order added."""
        with self._lock:
            return list(self._records)

    def answer(self, wire: bytes, max_size: int | None) -> bytes | None:
        """The response to one query in wire form; None means send nothing. A bug in answering
        becomes SERVFAIL, so a test sees a DNS failure rather than a hang."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        try:
            return self._answer(query, max_size)
        except Exception:
            failed = dns.message.make_response(query)
            failed.set_rcode(dns.rcode.SERVFAIL)
            return failed.to_wire()

    def _answer(self, query: dns.message.Message, max_size: int | None) -> bytes | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        with self._lock:
            records = list(self._records)
            faults = dict(self._faults)
        name = question.name
        rcode = dns.rcode.NOERROR
        for _ in range(_MAX_CHASE):
            fault = faults.get(name)
            if fault == "DROP":
                return None
            if fault is not None:
                rcode = dns.rcode.SERVFAIL if fault == "SERVFAIL" else dns.rcode.REFUSED
                break
            text = name.to_text().rstrip(".").lower()
            here = [r for r in records if r.name == text]
            cname = [r for r in here if r.type == "CNAME"]
            if cname and question.rdtype != dns.rdatatype.CNAME:
                rrset = dns.rrset.from_rdata(name, cname[0].ttl, _rdata("CNAME", cname[0].value))
                response.answer.append(rrset)
                name = _name(cname[0].value)
                continue
            wanted = dns.rdatatype.to_text(question.rdtype)
            matching = [r for r in here if r.type == wanted]
            if matching:
                rrset = dns.rrset.from_rdata_list(
                    name, min(r.ttl for r in matching), [_rdata(r.type, r.value) for r in matching]
                )
                response.answer.append(rrset)
            elif not here and not any(r.name.endswith("." + text) for r in records):
                rcode = dns.rcode.NXDOMAIN
            break
        response.set_rcode(rcode)
        try:
            return response.to_wire(max_size=max_size or 65535)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()


def _udp_limit(wire: bytes) -> int:
    """512 octets, or the EDNS payload size the query advertised."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return 512
    return max(512, query.payload) if query.edns >= 0 else 512


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.zone.answer(data, _udp_limit(data))
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class TestDNSServer:
    """The server: ``start()`` runs it on its own thread and loop, ``stop()`` ends it; usable
    as a context manager. ``address`` ("127.0.0.1:PORT") goes into ``dns_servers``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        control_port: int | None = 0,
        zone: Zone | None = None,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the test DNS server binds loopback only, not {host}")
        self.host = host
        self.port = port
        self.control_port = control_port
        self.zone = zone or Zone()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def address(self) -> str:
        """``host:port`` for ``ValidationSettings.dns_servers``."""
        return f"{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        """Base URL of the HTTP control."""
        if self.control_port is None:
            raise RuntimeError("this server was started without its HTTP control")
        return f"http://{self.host}:{self.control_port}"

    def _sockets(self) -> tuple[socket.socket, socket.socket]:
        """A UDP and a TCP socket bound to the same port (a free one when port is 0)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                if self.port:
                    raise
                continue
            self.port = port
            return udp, tcp
        raise OSError("found no port free for both UDP and TCP")

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                reply = self.zone.answer(await reader.readexactly(length), None)
                if reply is None:
                    continue
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body = 400, {"error": "bad request"}
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            length = int(headers.get("content-length", "0"))
            if length > _MAX_CONTROL_BODY:
                raise ValueError("body too large")
            data = json.loads(await reader.readexactly(length)) if length else {}
            status, body = self._handle(method, path, data)
        except (ValueError, KeyError, TypeError, asyncio.IncompleteReadError) as e:
            status, body = 400, {"error": str(e)}
        payload = json.dumps(body).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def _handle(self, method: str, path: str, data: Any) -> tuple[int, dict[str, Any]]:
        if path == "/records" and method == "GET":
            return 200, {"records": [r.__dict__ for r in self.zone.records()]}
        if path == "/records" and method == "POST":
            self.zone.add(data["name"], data["type"], data["value"], int(data.get("ttl", 60)))
            return 200, {"added": 1}
        if path == "/records" and method == "DELETE":
            return 200, {
                "removed": self.zone.remove(data["name"], data.get("type"), data.get("value"))
            }
        if path == "/faults" and method == "POST":
            self.zone.fault(data["name"], data.get("fault"))
            return 200, {"fault": data.get("fault")}
        return 404, {"error": f"no {method} {path}"}

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        udp_sock, tcp_sock = self._sockets()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self.zone), sock=udp_sock)
        tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)
        control = None
        if self.control_port is not None:
            control = await asyncio.start_server(self._control, self.host, self.control_port)
            self.control_port = control.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            transport.close()
            tcp.close()
            if control is not None:
                control.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:
            self._error = e
            self._ready.set()
        finally:
            loop.close()

    def start(self) -> TestDNSServer:
        """Bind and serve on a background thread; returns once it answers."""
        self._thread = threading.Thread(target=self._run, name="testdns", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(30)
        self._thread = None

    def __enter__(self) -> TestDNSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[TestDNSServer]:
    """A started server for the length of a ``with`` block."""
    server = TestDNSServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def control_request(url: str, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One call to a running server's HTTP control (what the certbot hooks use)."""
    if not url.startswith("http://"):
        raise ValueError(f"control URL must be http://host:port, not {url!r}")
    request = urllib.request.Request(  # noqa: S310 - http:// checked above
        url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
            result: dict[str, Any] = json.loads(reply.read())
            return result
    except urllib.error.HTTPError as e:
        raise ValueError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from e


def _positionals_last(argv: list[str]) -> list[str]:
    """``add``/``remove``/``fault`` with ``--`` before the record: a dns-01 value is base64url
    and starts with ``-`` one time in 32, which argparse would take for an option."""
    if not argv or argv[0] not in ("add", "remove", "fault") or "--" in argv:
        return argv
    if any(a in ("-h", "--help") for a in argv[1:]):
        return argv
    options: list[str] = []
    rest: list[str] = []
    i = 1
    while i < len(argv):
        if argv[i] == "--control" and i + 1 < len(argv):
            options += argv[i : i + 2]
            i += 2
        elif argv[i].startswith("--control="):
            options.append(argv[i])
            i += 1
        else:
            rest.append(argv[i])
            i += 1
    return [argv[0], *options, "--", *rest]


def main(argv: list[str] | None = None) -> int:
    """``serve`` a server, or ``add``/``remove``/``fault`` through a running one's control."""
    parser = argparse.ArgumentParser(
        prog="python -m ctstatus.acme.validation.testdns",
        description="A loopback authoritative DNS server for ACME tests and the demo.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="answer DNS on HOST:PORT (UDP and TCP) until killed")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5353)
    serve.add_argument("--control-port", type=int, default=5380, help="HTTP control port")
    serve.add_argument(
        "--record",
        action="append",
        default=[],
        metavar="TYPE NAME VALUE",
        nargs=3,
        help="a record to serve from the start (repeatable)",
    )
    for verb in ("add", "remove"):
        p = sub.add_parser(verb, help=f"{verb} a record on a running server")
        p.add_argument("--control", required=True, help="e.g. http://127.0.0.1:5380")
        p.add_argument("type", choices=TYPES)
        p.add_argument("name")
        p.add_argument("value", nargs="?" if verb == "remove" else None)
    f = sub.add_parser("fault", help="make a name answer SERVFAIL/REFUSED/nothing (or 'none')")
    f.add_argument("--control", required=True)
    f.add_argument("name")
    f.add_argument("fault", choices=[*FAULTS, "none"])
    args = parser.parse_args(_positionals_last(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "serve":
            zone = Zone()
            for rtype, name, value in args.record:
                zone.add(name, rtype, value)
            server = TestDNSServer(
                args.host, args.port, control_port=args.control_port, zone=zone
            ).start()
            print(f"dns {server.address} control {server.control_url}", flush=True)
            assert server._thread is not None
            try:
                server._thread.join()
            except KeyboardInterrupt:
                server.stop()
            return 0
        if args.command == "add":
            control_request(
                args.control,
                "POST",
                "/records",
                {"name": args.name, "type": args.type, "value": args.value},
            )
        elif args.command == "remove":
            control_request(
                args.control,
                "DELETE",
                "/records",
                {"name": args.name, "type": args.type, "value": args.value},
            )
        else:
            control_request(
                args.control,
                "POST",
                "/faults",
                {"name": args.name, "fault": None if args.fault == "none" else args.fault},
            )
    except (ValueError, OSError) as e:
        print(f"testdns: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
