"""The three RFC 8555/8737 challenge checks and the RFC 8659/8657 CAA check.

Every connection goes to an address that passed :func:`permitted_address`: with
``loopback_only`` only 127.0.0.0/8 and ::1, otherwise only globally routable unicast addresses
(never private, loopback, link-local or reserved ones: a challenge must not be a way to make
the CA fetch from its own network).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import aiohttp.abc
from cryptography import x509

from ctstatus.clock import Clock, system_clock

from . import caa
from .dnsquery import Lookup
from .errors import ValidationError
from .identifier import base_domain, check_identifier, is_wildcard
from .record import ValidationRecord
from .settings import ValidationSettings

log = logging.getLogger("ctstatus.acme.validation")

ACME_TLS_ALPN = "acme-tls/1"
ID_PE_ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def key_authorization_digest(key_authorization: str) -> bytes:
    """SHA-256 of the key authorization: the value tls-alpn-01 and (base64url) dns-01 carry."""
    return hashlib.sha256(key_authorization.encode("utf-8")).digest()


def dns_01_txt_value(key_authorization: str) -> str:
    """base64url(SHA-256(key authorization)) without padding (RFC 8555 §8.4)."""
    return (
        base64.urlsafe_b64encode(key_authorization_digest(key_authorization)).decode().rstrip("=")
    )


def permitted_address(ip: IP, *, loopback_only: bool) -> bool:
    """Whether validation may connect to ``ip`` (see the module docstring)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if loopback_only:
        return ip.is_loopback
    return ip.is_global and not ip.is_multicast


def _resolve_override(resolve: dict[str, str], name: str) -> str | None:
    """curl --resolve for validation: the exact name, else the longest ``*.suffix`` match."""
    if name in resolve:
        return resolve[name]
    best: tuple[int, str] | None = None
    for pattern, address in resolve.items():
        matches = pattern.startswith("*.") and name.endswith(pattern[1:])
        if matches and (best is None or len(pattern) > best[0]):
            best = (len(pattern), address)
    return best[1] if best else None


class _FixedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp resolves only through addresses the validator already vetted."""

    def __init__(self) -> None:
        self.addresses: dict[str, list[IP]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        vetted = self.addresses.get(host)
        if not vetted:
            raise OSError(f"no vetted address for {host}")
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in vetted
        ]

    async def close(self) -> None:
        return None


class Validator:
    """Runs challenges against the network allowed by ``settings``; every method raises
    ValidationError with a precise problem type or returns what it checked."""

    def __init__(self, settings: ValidationSettings, *, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self.lookup = Lookup(settings)
        self._resolve = {k.lower(): v for k, v in settings.resolve.items()}

    # -- addresses -------------------------------------------------------------------------

    async def addresses(self, domain: str) -> tuple[tuple[IP, ...], tuple[IP, ...]]:
        """(all addresses found, those we may connect to: IPv6 first, then IPv4).
        ValidationError("dns") when nothing resolves, ("connection") when every address found
        is one we must not connect to."""
        override = _resolve_override(self._resolve, domain)
        if override is not None:
            found: list[IP] = [ipaddress.ip_address(override)]
        else:
            v6, v4 = await asyncio.gather(
                self.lookup.query(domain, "AAAA"),
                self.lookup.query(domain, "A"),
                return_exceptions=True,
            )
            found = []
            errors: list[ValidationError] = []
            for result in (v6, v4):
                if isinstance(result, ValidationError):
                    errors.append(result)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    found.extend(ipaddress.ip_address(r.to_text()) for r in result.records)
            if not found:
                if errors:
                    raise errors[0]
                raise ValidationError(
                    "dns",
                    f"no A or AAAA records for {domain} via {self.lookup.description}",
                )
        usable = [
            ip for ip in found if permitted_address(ip, loopback_only=self.settings.loopback_only)
        ]
        if not usable:
            rule = (
                "only loopback addresses are allowed (loopback_only)"
                if self.settings.loopback_only
                else "private, loopback and reserved addresses are never contacted"
            )
            raise ValidationError(
                "connection",
                f"{domain} resolves to {', '.join(map(str, found))}: refused, {rule}",
            )
        usable.sort(key=lambda ip: -ip.version)
        return tuple(found), tuple(usable)

    # -- http-01 ---------------------------------------------------------------------------

    def _check_redirect(self, url: str, location: str, hops: int) -> tuple[str, str]:
        """The next URL and its host, or ValidationError("connection") when the redirect goes
        somewhere RFC 8555 §8.3 and the BRs do not let us follow."""
        if hops >= self.settings.max_redirects:
            raise ValidationError(
                "connection",
                f"more than {self.settings.max_redirects} redirects fetching the challenge "
                f"(last {url} -> {location})",
            )
        target = urljoin(url, location)
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https"):
            raise ValidationError(
                "connection", f"redirect from {url} to {target}: only http and https are followed"
            )
        allowed = self.settings.http_port if parts.scheme == "http" else self.settings.https_port
        try:
            port = parts.port
        except ValueError as e:
            raise ValidationError("connection", f"redirect to {target}: bad port ({e})") from e
        if port is not None and port != allowed:
            raise ValidationError(
                "connection",
                f"redirect from {url} to {target}: port {port} is not allowed for "
                f"{parts.scheme} (only {allowed})",
            )
        host = parts.hostname or ""
        try:
            host = check_identifier(host)
        except ValidationError as e:
            raise ValidationError(
                "connection", f"redirect from {url} to {target}: bad host ({e.detail})"
            ) from e
        if is_wildcard(host):
            raise ValidationError("connection", f"redirect to {target}: wildcard host")
        path = parts.path or "/"
        query = f"?{parts.query}" if parts.query else ""
        return f"{parts.scheme}://{host}:{allowed}{path}{query}", host

    async def http_01(self, domain: str, token: str, key_authorization: str) -> ValidationRecord:
        """GET http://domain:http_port/.well-known/acme-challenge/<token>; body (trailing
        whitespace stripped) must equal key_authorization (RFC 8555 §8.3)."""
        domain = self._plain(domain, "http-01")
        if not _TOKEN.match(token):
            raise ValidationError("malformed", f"token {token[:80]!r} is not base64url")
        url = f"http://{domain}:{self.settings.http_port}/.well-known/acme-challenge/{token}"
        resolver = _FixedResolver()
        urls: list[str] = []
        resolved: list[str] = []
        attempts: list[str] = []
        host = domain

        def connect_socket(addr_info: tuple[Any, ...]) -> socket.socket:
            """Records each address tried; attempts are sequential, so the last is the one
            that answered."""
            family, kind, proto, _, sockaddr = addr_info
            attempts.append(str(sockaddr[0]))
            return socket.socket(family=family, type=kind, proto=proto)

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                resolver=resolver,
                use_dns_cache=False,
                force_close=True,
                ssl=False,  # an https redirect target's certificate is not checked (as Boulder)
                happy_eyeballs_delay=None,
                socket_factory=connect_socket,
            ),
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": "ctstatus-acme-validation", "Accept": "*/*"},
            trust_env=False,
        )
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                while True:
                    # 1. vet the host's addresses; aiohttp connects only to those.
                    found, usable = await self.addresses(host)
                    resolved.extend(str(ip) for ip in found if str(ip) not in resolved)
                    resolver.addresses = {host: list(usable)}
                    urls.append(url)
                    # 2. one GET, no automatic redirects.
                    try:
                        async with session.get(url, allow_redirects=False) as response:
                            status = response.status
                            location = response.headers.get("Location")
                            body = await response.content.read(self.settings.max_body_bytes + 1)
                    except aiohttp.ClientSSLError as e:
                        raise ValidationError("tls", f"TLS with {url} failed: {e}") from e
                    except (aiohttp.ClientError, OSError) as e:
                        raise ValidationError(
                            "connection",
                            f"fetching {url} (addresses {', '.join(map(str, usable))}) failed: {e}",
                        ) from e
                    # 3. follow a redirect, within the rules.
                    if status in _REDIRECT_STATUSES:
                        if not location:
                            raise ValidationError(
                                "unauthorized", f"{url} answered {status} without a Location"
                            )
                        url, host = self._check_redirect(url, location, len(urls) - 1)
                        continue
                    break
        except TimeoutError as e:
            raise ValidationError(
                "connection",
                f"timed out after {self.settings.timeout_seconds:g} s fetching {url}",
            ) from e
        finally:
            await session.close()
        # 4. the answer must be 200 and the key authorization.
        if status != 200:
            raise ValidationError(
                "unauthorized", f"{url} answered HTTP {status}, not 200 with the key authorization"
            )
        if len(body) > self.settings.max_body_bytes:
            raise ValidationError(
                "incorrectResponse",
                f"{url} answered more than {self.settings.max_body_bytes} bytes; a key "
                "authorization is about 87",
            )
        text = body.decode("utf-8", "replace").rstrip(" \t\r\n")
        if text != key_authorization:
            raise ValidationError(
                "incorrectResponse",
                f"{url} answered {text[:100]!r}, not the key authorization {key_authorization!r}",
            )
        return self._record(
            "http-01",
            domain,
            urls=tuple(urls),
            resolved=tuple(resolved),
            used=attempts[-1] if attempts else None,
            port=urlsplit(url).port,
        )

    # -- dns-01 ----------------------------------------------------------------------------

    async def dns_01(self, domain: str, key_authorization: str) -> ValidationRecord:
        """A TXT record at _acme-challenge.<domain without "*."> must hold
        base64url(SHA-256(key_authorization)) (RFC 8555 §8.4)."""
        domain = check_identifier(domain)
        name = f"_acme-challenge.{base_domain(domain)}"
        expected = dns_01_txt_value(key_authorization)
        answer = await self.lookup.query(name, "TXT")
        if answer.status == "nxdomain":
            raise ValidationError(
                "dns", f"NXDOMAIN looking up TXT for {name} via {self.lookup.description}"
            )
        values = [
            b"".join(getattr(r, "strings", ())).decode("utf-8", "replace") for r in answer.records
        ]
        if not values:
            raise ValidationError(
                "unauthorized", f"no TXT record at {name} via {self.lookup.description}"
            )
        if expected not in values:
            shown = ", ".join(repr(v[:60]) for v in values[:5])
            raise ValidationError(
                "incorrectResponse",
                f"TXT records at {name} are {shown}; none is {expected!r}",
            )
        return self._record("dns-01", domain, query_name=name)

    # -- tls-alpn-01 -----------------------------------------------------------------------

    async def tls_alpn_01(self, domain: str, key_authorization: str) -> ValidationRecord:
        """TLS to domain:tls_alpn_port with SNI and ALPN acme-tls/1; the certificate must have
        one dNSName SAN (domain) and a critical acmeIdentifier holding SHA-256(key_authorization)
        (RFC 8737)."""
        domain = self._plain(domain, "tls-alpn-01")
        port = self.settings.tls_alpn_port
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # RFC 8737 §3: the certificate is self-signed
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols([ACME_TLS_ALPN])
        found, usable = await self.addresses(domain)
        failures: list[str] = []
        der: bytes | None = None
        used: str | None = None
        for ip in usable:
            target = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
            writer: asyncio.StreamWriter | None = None
            try:
                async with asyncio.timeout(self.settings.timeout_seconds):
                    _, writer = await asyncio.open_connection(
                        str(ip), port, ssl=context, server_hostname=domain
                    )
            except ssl.SSLError as e:
                raise ValidationError(
                    "tls", f"TLS handshake with {domain} at {target} failed: {e.reason or e}"
                ) from e
            except TimeoutError:
                failures.append(f"{target}: timed out after {self.settings.timeout_seconds:g} s")
                continue
            except OSError as e:
                failures.append(f"{target}: {e.strerror or e}")
                continue
            try:
                tls = writer.get_extra_info("ssl_object")
                protocol = tls.selected_alpn_protocol() if tls else None
                der = tls.getpeercert(binary_form=True) if tls else None
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
            if protocol != ACME_TLS_ALPN:
                raise ValidationError(
                    "tls",
                    f"{domain} at {target} did not negotiate ALPN {ACME_TLS_ALPN!r} "
                    f"(got {protocol!r})",
                )
            used = str(ip)
            break
        if used is None:
            raise ValidationError(
                "connection",
                f"could not connect to {domain} for tls-alpn-01: {'; '.join(failures)}",
            )
        if der is None:
            raise ValidationError("tls", f"{domain} at {used}:{port} presented no certificate")
        self._check_alpn_certificate(der, domain, key_authorization)
        return self._record(
            "tls-alpn-01", domain, resolved=tuple(map(str, found)), used=used, port=port
        )

    @staticmethod
    def _check_alpn_certificate(der: bytes, domain: str, key_authorization: str) -> None:
        """RFC 8737 §3: one dNSName SAN equal to the domain, and a critical acmeIdentifier
        extension whose value is the DER OCTET STRING of SHA-256(key authorization)."""
        try:
            cert = x509.load_der_x509_certificate(der)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound as e:
            raise ValidationError(
                "incorrectResponse", f"the tls-alpn-01 certificate for {domain} has no SAN"
            ) from e
        except ValueError as e:
            raise ValidationError(
                "incorrectResponse", f"the tls-alpn-01 certificate for {domain} is unreadable: {e}"
            ) from e
        names = list(sans)
        dns_names = sans.get_values_for_type(x509.DNSName)
        if len(names) != 1 or len(dns_names) != 1 or dns_names[0].lower() != domain:
            raise ValidationError(
                "incorrectResponse",
                f"the tls-alpn-01 certificate must name exactly {domain!r} in its SAN; it has "
                f"{[str(n.value) for n in names]}",
            )
        try:
            ext = cert.extensions.get_extension_for_oid(ID_PE_ACME_IDENTIFIER)
        except x509.ExtensionNotFound as e:
            raise ValidationError(
                "incorrectResponse",
                f"the tls-alpn-01 certificate for {domain} has no acmeIdentifier extension",
            ) from e
        if not ext.critical:
            raise ValidationError(
                "incorrectResponse",
                f"the acmeIdentifier extension for {domain} is not critical (RFC 8737 §3)",
            )
        value = getattr(ext.value, "value", b"")
        expected = b"\x04\x20" + key_authorization_digest(key_authorization)
        if value != expected:
            raise ValidationError(
                "incorrectResponse",
                f"the acmeIdentifier for {domain} is {bytes(value).hex()}, not the OCTET STRING "
                f"of SHA-256 of the key authorization ({expected.hex()})",
            )

    # -- CAA -------------------------------------------------------------------------------

    async def check_caa(
        self, domain: str, *, wildcard: bool, account_uri: str, method: str
    ) -> None:
        """RFC 8659 tree climbing (CNAMEs followed by the resolver), issue vs issuewild, critical
        unknown tags, RFC 8657 accounturi and validationmethods. ValidationError("caa") when the
        records forbid us; ValidationError("dns") when a lookup fails (SERVFAIL, timeout): a
        failed lookup is a refusal, NXDOMAIN or no records is permission."""
        domain = check_identifier(domain)
        await caa.check_caa(
            self.lookup,
            base_domain(domain),
            wildcard=wildcard or is_wildcard(domain),
            account_uri=account_uri,
            method=method,
            identities=self.settings.caa_identities,
        )

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _plain(domain: str, method: str) -> str:
        name = check_identifier(domain)
        if is_wildcard(name):
            raise ValidationError(
                "malformed", f"{method} cannot validate the wildcard {name}; only dns-01 can"
            )
        return name

    def _record(
        self,
        method: str,
        domain: str,
        *,
        urls: Sequence[str] = (),
        resolved: Sequence[str] = (),
        used: str | None = None,
        port: int | None = None,
        query_name: str | None = None,
    ) -> ValidationRecord:
        record = ValidationRecord(
            method=method,
            domain=domain,
            validated_at=self.clock(),
            resolver=self.lookup.description,
            urls=tuple(urls),
            addresses_resolved=tuple(resolved),
            address_used=used,
            port=port,
            query_name=query_name,
        )
        log.info("validated %s for %s", method, domain, extra={"validation": record.to_json()})
        return record
