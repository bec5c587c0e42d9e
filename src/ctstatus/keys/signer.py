"""The one signing abstraction used by every part that signs.

A :class:`Signer` signs bytes with one key. File keys sign in process; PKCS#11 keys sign inside
the token. ``cryptography``'s builders only accept in-process keys, so for a token key we build
with a throwaway key of the same algorithm, sign the exact TBS bytes with the real key and put the
real signature in place of the throwaway one (:mod:`ctstatus.keys.assemble`).
"""

from __future__ import annotations

import enum
import functools
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyAlgorithm(enum.StrEnum):
    """Key types a CA of the Web PKI may use (BR §6.1.5), named as in the config file."""

    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @property
    def is_ec(self) -> bool:
        return self.value.startswith("ecdsa")

    @property
    def rsa_bits(self) -> int:
        if self.is_ec:
            raise ValueError(f"{self.value} is not an RSA algorithm")
        return int(self.value.split("-")[1])

    @property
    def curve(self) -> ec.EllipticCurve:
        if self is KeyAlgorithm.ECDSA_P256:
            return ec.SECP256R1()
        if self is KeyAlgorithm.ECDSA_P384:
            return ec.SECP384R1()
        raise ValueError(f"{self.value} is not an ECDSA algorithm")

    @property
    def hash_algorithm(self) -> hashes.SHA256 | hashes.SHA384:
        """The digest paired with the key (BR §7.1.3.2: P-384 with SHA-384, else SHA-256)."""
        return hashes.SHA384() if self is KeyAlgorithm.ECDSA_P384 else hashes.SHA256()

    def generate(self) -> PrivateKey:
        """A new in-process private key of this algorithm."""
        if self.is_ec:
            return ec.generate_private_key(self.curve)
        return rsa.generate_private_key(public_exponent=65537, key_size=self.rsa_bits)

    @classmethod
    def of(cls, key: PublicKey | PrivateKey) -> KeyAlgorithm:
        """The algorithm of an existing key; refuses keys the Web PKI does not allow."""
        if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
            by_curve = {"secp256r1": cls.ECDSA_P256, "secp384r1": cls.ECDSA_P384}
            if key.curve.name in by_curve:
                return by_curve[key.curve.name]
            raise ValueError(f"unsupported curve {key.curve.name}")
        if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
            if key.key_size in (2048, 3072, 4096):
                return cls(f"rsa-{key.key_size}")
            raise ValueError(f"unsupported RSA key size {key.key_size}")
        raise ValueError(f"unsupported key type {type(key).__name__}")


@runtime_checkable
class Signer(Protocol):
    """Signs with one private key, wherever that key lives."""

    @property
    def algorithm(self) -> KeyAlgorithm: ...

    @property
    def description(self) -> str:
        """Where the key lives, for humans (a path or a PKCS#11 URI); never a secret."""
        ...

    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with the algorithm's hash.

        ECDSA returns a DER ``Ecdsa-Sig-Value``; RSA returns a PKCS#1 v1.5 signature. These are
        the encodings X.509, OCSP, CRLs and RFC 6962 ``DigitallySigned`` all use.
        """
        ...

    def private_key(self) -> CertificateIssuerPrivateKeyTypes | None:
        """The in-process key when there is one (fast path for builders), else ``None``."""
        ...

    def close(self) -> None:
        """Release what the key holds (a token session); the signer is unusable afterwards."""
        ...


class InProcessSigner:
    """A signer over a private key held in this process (loaded from a file, or ephemeral)."""

    def __init__(self, key: PrivateKey, description: str = "in-process key") -> None:
        self._key = key
        self._algorithm = KeyAlgorithm.of(key)
        self._description = description

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._algorithm

    @property
    def description(self) -> str:
        return self._description

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(self._algorithm.hash_algorithm))
        return self._key.sign(data, padding.PKCS1v15(), self._algorithm.hash_algorithm)

    def private_key(self) -> CertificateIssuerPrivateKeyTypes:
        return self._key

    def close(self) -> None:
        """Nothing to release for an in-process key."""


def verify_signature(public_key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` over ``data`` verifies with ``public_key`` (the key's own hash)."""
    from cryptography.exceptions import InvalidSignature

    algorithm = KeyAlgorithm.of(public_key)
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm.hash_algorithm))
        else:
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm.hash_algorithm)
    except InvalidSignature:
        return False
    return True


@functools.cache
def throwaway_key(algorithm: KeyAlgorithm) -> PrivateKey:
    """A process-wide throwaway key per algorithm, for building what a token key then signs.

    It never signs anything that leaves the process: its signature is always replaced.
    """
    return algorithm.generate()
