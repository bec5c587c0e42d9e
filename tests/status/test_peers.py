"""Peers we did not write judge the real server: ``openssl ocsp``, ``openssl crl``, pkilint, curl.

One server per (backend, signer mode) on 127.0.0.1, built from a real instance exactly as
``ctstatus ocsp serve`` builds it; serials are made by the instance's own issuing CA.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.x509 import ocsp

from ctstatus.instance import Instance
from ctstatus.ledger import RevocationReason, SerialState
from ctstatus.ledger.schema import events
from ctstatus.status import wiring

BIN = Path(sys.executable).parent
OK = "Response verify OK"


@dataclass
class Peer:
    mode: str
    directory: Path
    url: str
    driver: Any
    chain: Path
    issuer_pem: Path
    root_pem: Path
    tmp: Path
    wired: wiring.Wired
    mode_backend: str

    def openssl(self, *args: str | Path) -> str:
        result = subprocess.run(
            ["openssl", "ocsp", *map(str, args)], capture_output=True, text=True, check=False
        )
        return result.stdout + result.stderr


MODES = [
    pytest.param(("sqlite", "ca"), id="sqlite-ca"),
    pytest.param(("sqlite", "delegated"), id="sqlite-delegated"),
    pytest.param(("postgresql", "ca"), id="postgresql-ca", marks=pytest.mark.postgres),
    pytest.param(
        ("postgresql", "delegated"), id="postgresql-delegated", marks=pytest.mark.postgres
    ),
]


@pytest.fixture(scope="module", params=MODES)
def peer(
    request: pytest.FixtureRequest,
    serve: Callable[[Any], Any],
    instance_driver: Callable[[Path], Any],
    make_instance_dir: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Peer]:
    backend, mode = request.param
    directory = make_instance_dir(backend, mode)
    instance = Instance.open(directory)
    wired = wiring.build(instance)
    running = serve(wired.app)
    driver = instance_driver(directory)
    tmp = tmp_path_factory.mktemp(f"peer-{backend}-{mode}")
    issuer_pem = directory / "certs" / "issuing-ca.pem"
    root_pem = directory / "certs" / "root-ca.pem"
    chain = tmp / "chain.pem"
    chain.write_bytes(root_pem.read_bytes() + issuer_pem.read_bytes())
    yield Peer(
        mode, directory, running.url, driver, chain, issuer_pem, root_pem, tmp, wired, backend
    )
    running.stop()
    driver.ledger.close()
    wired.close()


def _serial(peer: Peer, state: SerialState, via: SerialState = SerialState.ISSUED) -> Path:
    record = peer.driver.serial(state, via=via)
    _settle(peer)
    return peer.driver.pem(record.serial, peer.tmp)


def _settle(peer: Peer) -> None:
    """Wait until the server has applied the journal up to now.

    On SQLite the responder checks before every lookup, so this returns at once; on PostgreSQL
    memory trails a commit by a notification's delay (milliseconds), which a peer started right
    after the commit could otherwise race.
    """
    with peer.driver.ledger.engine.connect() as conn:
        newest = conn.scalar(sa.select(sa.func.max(events.c.id)))
    deadline = time.monotonic() + 5
    while peer.wired.service.applied_through < newest and peer.mode_backend != "sqlite":
        assert time.monotonic() < deadline, "the server did not catch up with the ledger"
        time.sleep(0.005)


CASES = [
    pytest.param(SerialState.ISSUED, SerialState.ISSUED, "good", id="issued"),
    pytest.param(SerialState.PRECERT_SIGNED, SerialState.ISSUED, "good", id="precert-only"),
    pytest.param(SerialState.ABANDONED, SerialState.ISSUED, "good", id="abandoned"),
    pytest.param(SerialState.REVOKED, SerialState.ISSUED, "revoked", id="revoked"),
    pytest.param(
        SerialState.REVOKED, SerialState.ABANDONED, "revoked", id="abandoned-then-revoked"
    ),
]


@pytest.mark.parametrize("hash_option", ["-sha1", "-sha256"])
@pytest.mark.parametrize(("state", "via", "expected"), CASES)
def test_openssl_verifies_over_post(
    peer: Peer, state: SerialState, via: SerialState, expected: str, hash_option: str
) -> None:
    leaf = _serial(peer, state, via)
    out = peer.openssl(
        "-issuer", peer.issuer_pem, hash_option, "-cert", leaf, "-no_nonce",
        "-url", f"{peer.url}/ocsp", "-CAfile", peer.chain,
    )  # fmt: skip
    assert OK in out, out
    assert f"{leaf}: {expected}" in out, out
    if expected == "revoked":
        assert "Reason: keyCompromise" in out, out


@pytest.mark.parametrize("hash_option", ["-sha1", "-sha256"])
@pytest.mark.parametrize(("state", "via", "expected"), CASES)
def test_openssl_verifies_over_get(
    peer: Peer, state: SerialState, via: SerialState, expected: str, hash_option: str
) -> None:
    leaf = _serial(peer, state, via)
    request = peer.tmp / f"{leaf.stem}{hash_option}.req"
    response = peer.tmp / f"{leaf.stem}{hash_option}.resp"
    peer.openssl("-issuer", peer.issuer_pem, hash_option, "-cert", leaf, "-no_nonce",
                 "-reqout", request)  # fmt: skip
    encoded = quote(base64.b64encode(request.read_bytes()).decode(), safe="")
    fetched = httpx.get(f"{peer.url}/ocsp/{encoded}")
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "application/ocsp-response"
    response.write_bytes(fetched.content)
    out = peer.openssl("-respin", response, "-issuer", peer.issuer_pem, hash_option,
                       "-cert", leaf, "-CAfile", peer.chain)  # fmt: skip
    assert OK in out, out
    assert f"{leaf}: {expected}" in out, out


def test_signed_by_whom_the_mode_says(peer: Peer) -> None:
    leaf = x509.load_pem_x509_certificate(_serial(peer, SerialState.ISSUED).read_bytes())
    issuer = x509.load_pem_x509_certificate(peer.issuer_pem.read_bytes())
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, _sha256()).build()
    body = httpx.post(
        f"{peer.url}/ocsp",
        content=request.public_bytes(_der()),
        headers={"content-type": "application/ocsp-request"},
    ).content
    response = ocsp.load_der_ocsp_response(body)
    if peer.mode == "ca":
        assert response.certificates == []
        assert response.responder_key_hash == _key_hash(issuer)
    else:
        (responder,) = response.certificates
        assert responder.issuer == issuer.subject
        assert response.responder_key_hash == _key_hash(responder)
        assert response.next_update_utc <= responder.not_valid_after_utc  # MRSP §6


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def _key_hash(certificate: x509.Certificate) -> bytes:
    import hashlib

    from ctstatus.ledger.hashes import raw_public_key

    return hashlib.sha1(raw_public_key(certificate)).digest()  # noqa: S324 - RFC 6960 byKey


def test_random_serial_is_unauthorized(peer: Peer) -> None:
    out = peer.openssl("-issuer", peer.issuer_pem, "-serial", "0x1d2c3b4a59687766", "-no_nonce",
                       "-url", f"{peer.url}/ocsp", "-CAfile", peer.chain)  # fmt: skip
    assert "Responder Error: unauthorized (6)" in out, out


def test_openssl_with_its_default_nonce_still_verifies(peer: Peer) -> None:
    leaf = _serial(peer, SerialState.ISSUED)
    out = peer.openssl("-issuer", peer.issuer_pem, "-cert", leaf, "-url", f"{peer.url}/",
                       "-CAfile", peer.chain)  # fmt: skip
    assert OK in out, out
    assert f"{leaf}: good" in out, out
    assert "WARNING: no nonce in response" in out  # pre-signed: RFC 9919 §2.1, said honestly


def test_pkilint_finds_nothing_in_responses(peer: Peer, pkilint: Callable[..., Any]) -> None:
    for state in (SerialState.ISSUED, SerialState.REVOKED):
        leaf = _serial(peer, state)
        response = peer.tmp / f"{leaf.stem}.lint.der"
        peer.openssl("-issuer", peer.issuer_pem, "-sha256", "-cert", leaf, "-no_nonce",
                     "-url", f"{peer.url}/ocsp", "-respout", response)  # fmt: skip
        code, output = pkilint("lint_ocsp_response", "lint", "-s", "WARNING", response)
        assert code == 0, output


def test_delegated_responder_certificate_passes_pkilint(
    peer: Peer, pkilint: Callable[..., Any]
) -> None:
    responders = peer.directory / "ocsp-responders"
    if peer.mode == "ca":
        assert not responders.exists()  # nothing issued when the CA signs itself
        return
    paths = sorted((responders / "issuing-ca").glob("*.cert.pem"))
    assert paths
    for path in paths:
        code, output = pkilint(
            "lint_cabf_serverauth_cert", "lint", "-s", "WARNING", "-t", "OCSP-RESPONDER", path
        )
        assert code == 0, output
        key = path.with_name(path.name.replace(".cert.pem", ".key.pem"))
        assert key.stat().st_mode & 0o777 == 0o600


def test_every_crl_verifies_and_passes_pkilint(peer: Peer, pkilint: Callable[..., Any]) -> None:
    urls = json.loads(
        subprocess.run(
            [BIN / "ctstatus", "-i", peer.directory, "crl", "urls"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert urls == [f"http://pki.example.com/crl/issuing-ca/{n}.crl" for n in range(4)]
    root_url = "http://pki.example.com/crl/root-ca/0.crl"
    for url in [*urls, root_url]:
        fetched = httpx.get(peer.url + url.removeprefix("http://pki.example.com"))
        assert fetched.status_code == 200, url
        assert fetched.headers["content-type"] == "application/pkix-crl"
        assert "max-age=" in fetched.headers["cache-control"]
        path = peer.tmp / (url.rsplit("/", 2)[-2] + "-" + url.rsplit("/", 1)[-1])
        path.write_bytes(fetched.content)
        verify = subprocess.run(
            ["openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-verify",
             "-CAfile", peer.root_pem if url == root_url else peer.chain],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert "verify OK" in verify.stdout + verify.stderr, verify.stderr
        code, output = pkilint("lint_crl", "lint", "-s", "WARNING", "-t", "CRL", "-p", "BR", path)
        assert code == 0, url + output
        crl = x509.load_der_x509_crl(fetched.content)
        if url == root_url:  # a full CRL: no IDP (BR §7.2.2 NOT RECOMMENDED)
            with pytest.raises(x509.ExtensionNotFound):
                crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
            continue
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical
        assert idp.value.only_contains_user_certs
        assert [n.value for n in idp.value.full_name or []] == [url]


def test_revoke_reaches_ocsp_within_a_second(peer: Peer) -> None:
    leaf_pem = _serial(peer, SerialState.ISSUED)
    leaf = x509.load_pem_x509_certificate(leaf_pem.read_bytes())
    issuer = x509.load_pem_x509_certificate(peer.issuer_pem.read_bytes())
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, _sha256()).build()
    url = f"{peer.url}/ocsp/{quote(base64.b64encode(request.public_bytes(_der())).decode())}"

    def status() -> ocsp.OCSPCertStatus:
        return ocsp.load_der_ocsp_response(httpx.get(url).content).certificate_status

    assert status() is ocsp.OCSPCertStatus.GOOD  # now in the responder's memory
    revoked = subprocess.run(
        [BIN / "ctstatus", "-i", peer.directory, "revoke", f"{leaf.serial_number:x}",
         "--reason", "keyCompromise", "--no-presign"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    done = time.monotonic()
    while status() is not ocsp.OCSPCertStatus.REVOKED:
        assert time.monotonic() - done < 1.0, "the revocation was not served within a second"
        time.sleep(0.02)


def test_revoked_with_ctstatus_revoke_is_verified_revoked(peer: Peer) -> None:
    record = peer.driver.serial(SerialState.ABANDONED)
    leaf = peer.driver.pem(record.serial, peer.tmp)
    result = subprocess.run(
        [BIN / "ctstatus", "-i", peer.directory, "revoke", f"0x{record.serial:x}",
         "--reason", "superseded"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored 2 signed OCSP responses" in result.stdout
    out = peer.openssl("-issuer", peer.issuer_pem, "-cert", leaf, "-no_nonce",
                       "-url", f"{peer.url}/ocsp", "-CAfile", peer.chain)  # fmt: skip
    assert OK in out, out
    assert f"{leaf}: revoked" in out, out
    assert "Reason: superseded" in out
    assert RevocationReason.SUPERSEDED  # the ledger's name for it
