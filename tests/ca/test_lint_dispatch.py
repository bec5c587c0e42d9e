"""The table-driven pkilint walk finds exactly what pkilint's own walk finds.

Differential test over real certificates (cryptography-vectors' x509 folder: roots, CAs,
leaves, precertificates, broken ones) and our own profiles, good and bad, for every certificate
type pkilint detects, with both walks run on the same decoded document.
"""

from __future__ import annotations

import base64
import contextlib
import functools
from pathlib import Path
from typing import Any

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pkilint import loader
from pkilint.cabf import serverauth
from pkilint.document import NodeVisitor
from pkilint.pkix import certificate as pkix_certificate
from tests.ca.test_profiles import build_chain

from ctstatus.ca import lint_dispatch
from ctstatus.ca.lint import lint_certificate
from ctstatus.keys import KeyAlgorithm

VECTORS = Path(cryptography_vectors.__file__).parent / "x509"


def _vector_certificates() -> list[tuple[str, bytes]]:
    """Every certificate file, raw: pkilint gets the bytes even where cryptography refuses."""
    found = []
    for path in sorted(VECTORS.rglob("*")):
        if path.suffix not in (".pem", ".der", ".crt"):
            continue
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            body = data.split(b"-----BEGIN CERTIFICATE-----", 1)[1]
            der = base64.b64decode(b"".join(body.split(b"-----END", 1)[0].split()))
        elif data[:1] == b"\x30":
            der = data
        else:
            continue
        found.append((str(path.relative_to(VECTORS)), der))
    return found


def _own_certificates() -> list[tuple[str, bytes]]:
    good = build_chain(KeyAlgorithm.ECDSA_P256, ["www.example.com", "example.com"])
    rsa = build_chain(KeyAlgorithm.RSA_2048, ["a.example.net", "192.0.2.7"])
    bad = build_chain(KeyAlgorithm.ECDSA_P256, ["localhost", "under_score.example.com"])
    return [
        (f"own/{name}", certificate.public_bytes(Encoding.DER))
        for name, certificate in (
            ("root", good.root),
            ("issuing", good.issuing),
            ("leaf", good.leaf),
            ("rsa-leaf", rsa.leaf),
            ("bad-leaf", bad.leaf),
        )
    ]


def _results(container: Any, der: bytes) -> list[tuple[str, str, list[tuple[str, str | None]]]]:
    document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "certificate")
    return [
        (
            result.validator.name,
            result.node.path,
            [(d.finding.code, d.message) for d in result.finding_descriptions],
        )
        for result in container.validate(document.root)
    ]


@functools.cache
def _walks(certificate_type: Any) -> tuple[Any, Any]:
    """pkilint's own container and the accelerated one, built once per certificate type."""

    def build() -> Any:
        return pkix_certificate.create_pkix_certificate_validator_container(
            serverauth.create_decoding_validators(),
            serverauth.create_validators(certificate_type),
        )

    return build(), lint_dispatch.accelerate(build())


def _loadable(der: bytes) -> bool:
    try:
        loader.RFC5280CertificateDocumentLoader().load_der_document(der, "certificate")
    except Exception:  # not a certificate pkilint can decode (CSRs, OCSP, garbage)
        return False
    return True


CERTIFICATES = [(n, d) for n, d in _vector_certificates() + _own_certificates() if _loadable(d)]


def test_the_corpus_is_large_and_varied() -> None:
    assert len(CERTIFICATES) > 100
    types = set()
    for _, der in CERTIFICATES:
        with contextlib.suppress(Exception):  # pkilint refuses a few vectors outright
            types.add(lint_certificate(der)[0])
    assert {"ROOT_CA", "DV_FINAL_CERTIFICATE"} <= types
    assert len(types) >= 5


@pytest.mark.parametrize(("name", "der"), CERTIFICATES, ids=[name for name, _ in CERTIFICATES])
def test_same_findings_in_the_same_order(name: str, der: bytes) -> None:
    document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "certificate")
    plain, fast = _walks(serverauth.determine_certificate_type(document))
    expected = _results(plain, der)
    assert _results(fast, der) == expected
    assert _results(fast, der) == expected  # second pass: answered from the table


def test_bad_certificate_findings_survive() -> None:
    chain = build_chain(KeyAlgorithm.ECDSA_P256, ["localhost", "under_score.example.com"])
    _, findings = lint_certificate(chain.leaf.public_bytes(Encoding.DER))
    assert any(f.is_error for f in findings)


@pytest.mark.parametrize(
    ("body", "trusted"),
    [
        (
            "def match(self, node):\n    if not super().match(node):\n        return False\n"
            "    return node.x\n",
            True,
        ),
        ("def match(self, node):\n    return super().match(node) and node.x\n", True),
        ("def match(self, node):\n    return node.x or super().match(node)\n", False),
        ("def match(self, node):\n    return super().match(node) or node.x\n", False),
        (
            "def match(self, node):\n    if not super().match(other):\n        return False\n"
            "    return True\n",
            False,
        ),
        ("def match(self, node):\n    if not super().match(node):\n        return True\n", False),
        ("def match(self, node):\n    return True\n", False),
    ],
)
def test_only_overrides_guarded_by_super_are_trusted(body: str, trusted: bool) -> None:
    assert lint_dispatch.source_starts_with_super_match(body) is trusted


def test_an_untrusted_override_is_asked_on_every_node() -> None:
    class Opaque(NodeVisitor):
        def match(self, node: Any) -> bool:
            return bool(node.path) or super().match(node)

    class Guarded(NodeVisitor):
        def match(self, node: Any) -> bool:
            return super().match(node) and bool(node.path)

    class GuardedOnOpaque(Opaque):
        def match(self, node: Any) -> bool:
            if not super().match(node):
                return False
            return bool(node.path)

    assert lint_dispatch._match_kind(NodeVisitor) is lint_dispatch._MatchKind.PLAIN
    assert lint_dispatch._match_kind(Opaque) is lint_dispatch._MatchKind.OPAQUE
    assert lint_dispatch._match_kind(Guarded) is lint_dispatch._MatchKind.GUARDED
    assert lint_dispatch._match_kind(GuardedOnOpaque) is lint_dispatch._MatchKind.OPAQUE
