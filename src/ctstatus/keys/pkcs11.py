"""Signing keys held in a PKCS#11 token (an HSM, or SoftHSM2 in tests).

A key is named by an RFC 7512 URI (``pkcs11:token=ctstatus;object=issuing-ca-2026``); the module
(the vendor's ``.so``) and the user PIN come from the configuration. The private key never leaves
the token: :class:`Pkcs11Signer` only asks the token to sign, and :mod:`ctstatus.keys.assemble`
puts those signatures into certificates and CRLs.

Process-wide PKCS#11 state is easy to get wrong, so this module owns all of it:

* each module is loaded once per *real* path (``C_Initialize`` twice, even through a symlink,
  fails with ``CKR_CRYPTOKI_ALREADY_INITIALIZED``);
* python-pkcs11 calls ``C_Initialize(NULL)``, which promises the module that no two threads
  call it at once (SoftHSM then turns its own mutexes off), so every call into a module is
  serialised by that module's lock; this is also what makes each signer thread-safe;
* login state is shared by all sessions of the process on a token, and python-pkcs11 logs the
  whole token out when a logged-in session closes, so one refcounted session per token holds
  the login and signers work on sessions of their own opened without a PIN.

The PIN travels as a :class:`~ctstatus.secrets.Secret` (a plain ``str`` is wrapped at once), is
revealed only for ``C_Login``, and is otherwise kept only as a keyed hash (to refuse a second,
different PIN for a token that is already logged in); it never appears in a message or repr.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import string
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import exceptions as p11err
from pkcs11 import lib as _load_pkcs11_lib
from pkcs11.constants import Attribute, MechanismFlag, ObjectClass, TokenFlag
from pkcs11.mechanisms import KeyType, Mechanism
from pkcs11.types import Object, Session, SignMixin, Token

from ctstatus.errors import SigningKeyError
from ctstatus.keys.signer import KeyAlgorithm, PublicKey, verify_signature
from ctstatus.secrets import Secret

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

__all__ = [
    "Pkcs11KeyRef",
    "Pkcs11Signer",
    "Pkcs11UriError",
    "destroy_pkcs11_key",
    "generate_pkcs11_key",
    "map_pkcs11_error",
    "parse_pkcs11_uri",
]

log = logging.getLogger(__name__)

SOFTHSM_MODULE: Final = "/usr/lib/softhsm/libsofthsm2.so"
"""Debian's SoftHSM2 module (package ``softhsm2``), for hints and tests."""

# --------------------------------------------------------------------------------------------
# RFC 7512 URIs
# --------------------------------------------------------------------------------------------

_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
# pk11-pchar = unreserved / pk11-p-res / pct-encoded; pk11-p-res adds these in path values.
_PATH_LITERAL: Final = _UNRESERVED | frozenset(":[]@!$'()*+,=&")
_HEXDIGITS: Final = frozenset(string.hexdigits)
# Defined by RFC 7512 but not used to select a ctstatus key: refused rather than ignored, so a
# URI never silently names a different key than its author meant.
_UNSUPPORTED_PATH_ATTRIBUTES: Final = frozenset(
    {
        "manufacturer",
        "model",
        "serial",
        "library-description",
        "library-manufacturer",
        "library-version",
        "slot-description",
        "slot-id",
        "slot-manufacturer",
    }
)
_TOKEN_LABEL_MAX_BYTES: Final = 32  # CK_TOKEN_INFO.label is 32 bytes, space padded


class Pkcs11UriError(SigningKeyError):
    """A PKCS#11 URI is malformed or names something ctstatus cannot use as a signing key."""


@dataclass(frozen=True)
class Pkcs11KeyRef:
    """A signing key in a token, as named by an RFC 7512 URI.

    ``token`` is the token label (URI ``token``), ``label`` the key's CKA_LABEL (URI ``object``)
    and ``key_id`` its CKA_ID (URI ``id``). At least one of ``label`` and ``key_id`` is needed:
    a URI naming only a token would match every key in it.
    """

    token: str
    label: str | None = None
    key_id: bytes | None = None

    def __post_init__(self) -> None:
        if not self.token:
            raise Pkcs11UriError("a PKCS#11 key reference needs a token label", _URI_HINT)
        if len(self.token.encode()) > _TOKEN_LABEL_MAX_BYTES:
            raise Pkcs11UriError(
                f"token label {self.token!r} is longer than {_TOKEN_LABEL_MAX_BYTES} bytes",
                "PKCS#11 token labels are at most 32 bytes of UTF-8",
            )
        if self.label is None and self.key_id is None:
            raise Pkcs11UriError(
                f"the PKCS#11 key reference for token {self.token!r} names no key", _URI_HINT
            )
        if self.label == "" or self.key_id == b"":
            raise Pkcs11UriError("a PKCS#11 key label or id must not be empty", _URI_HINT)

    @property
    def uri(self) -> str:
        """The canonical RFC 7512 URI: only unreserved characters are left unencoded."""
        parts = [f"token={_pct_encode(self.token.encode(), _UNRESERVED)}"]
        if self.label is not None:
            parts.append(f"object={_pct_encode(self.label.encode(), _UNRESERVED)}")
        if self.key_id is not None:
            parts.append(f"id={_pct_encode(self.key_id, frozenset())}")
        return "pkcs11:" + ";".join(parts)

    def __str__(self) -> str:
        return self.uri


_URI_HINT: Final = (
    "write the key as a PKCS#11 URI such as pkcs11:token=ctstatus;object=issuing-ca-2026 "
    "(RFC 7512; percent-encode other characters, e.g. a space as %20)"
)


def parse_pkcs11_uri(uri: str) -> Pkcs11KeyRef:
    """Parse an RFC 7512 URI naming a private key; strict, so typos fail here, not in the HSM.

    Supports the path attributes ``token``, ``object`` and ``id`` (and ``type=private``, which
    says nothing new). Query attributes are refused: the module and PIN come from the
    configuration, and a ``pin-value`` in a URI would leak the PIN into logs.
    """
    if not isinstance(uri, str):
        raise Pkcs11UriError(f"a PKCS#11 URI must be a string, not {type(uri).__name__}")
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() != "pkcs11":
        shown = uri.partition("?")[0]
        raise Pkcs11UriError(f"{shown!r} is not a PKCS#11 URI (no 'pkcs11:' scheme)", _URI_HINT)
    path, question, query = rest.partition("?")
    shown = f"pkcs11:{path}"  # never echo the query: it may hold a pin-value
    if question:
        names = sorted({q.partition("=")[0] for q in query.split("&") if q})
        if "pin-value" in names:
            raise Pkcs11UriError(
                f"the PKCS#11 URI {shown}?… carries a PIN (pin-value)",
                "remove the PIN from the URI and give it as the key's PIN in the configuration",
            )
        raise Pkcs11UriError(
            f"the PKCS#11 URI {shown}?… has query attributes ({', '.join(names) or 'empty'}), "
            "which ctstatus does not support",
            "drop the part from '?' on; the module path and PIN are configured separately",
        )
    if "#" in path:
        raise Pkcs11UriError(f"the PKCS#11 URI {shown!r} has a fragment ('#')", _URI_HINT)
    if not path:
        raise Pkcs11UriError(f"the PKCS#11 URI {shown!r} names no token or key", _URI_HINT)

    values: dict[str, bytes] = {}
    for part in path.split(";"):
        name, equals, raw = part.partition("=")
        if not part:
            raise Pkcs11UriError(
                f"the PKCS#11 URI {shown!r} has an empty attribute (stray ';')", _URI_HINT
            )
        if not equals:
            raise Pkcs11UriError(
                f"attribute {name!r} of the PKCS#11 URI {shown!r} has no '=value'", _URI_HINT
            )
        if name in _UNSUPPORTED_PATH_ATTRIBUTES:
            raise Pkcs11UriError(
                f"the PKCS#11 URI attribute {name!r} is not supported (in {shown!r})",
                "name the key with token, object and/or id only",
            )
        if name not in {"token", "object", "id", "type"}:
            raise Pkcs11UriError(
                f"unknown PKCS#11 URI attribute {name!r} in {shown!r}",
                "attribute names are case-sensitive; use token, object and/or id",
            )
        if name in values:
            raise Pkcs11UriError(
                f"attribute {name!r} appears twice in the PKCS#11 URI {shown!r}",
                "RFC 7512 allows each attribute once",
            )
        values[name] = _pct_decode(raw, name, shown)

    if "type" in values and values["type"] != b"private":
        raise Pkcs11UriError(
            f"the PKCS#11 URI {shown!r} names a {values['type'].decode(errors='replace')!r} "
            "object, but only a private key can sign",
            "use type=private or leave type out",
        )
    if "token" not in values:
        raise Pkcs11UriError(f"the PKCS#11 URI {shown!r} names no token", _URI_HINT)
    return Pkcs11KeyRef(
        token=_utf8(values["token"], "token", shown),
        label=_utf8(values["object"], "object", shown) if "object" in values else None,
        key_id=values.get("id"),
    )


def _pct_decode(raw: str, name: str, shown: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEXDIGITS:
                raise Pkcs11UriError(
                    f"bad percent-encoding {raw[i : i + 3]!r} in attribute {name!r} of the "
                    f"PKCS#11 URI {shown!r}",
                    "'%' must be followed by two hex digits; write a literal '%' as %25",
                )
            out.append(int(pair, 16))
            i += 3
        elif char in _PATH_LITERAL:
            out += char.encode("ascii")
            i += 1
        else:
            raise Pkcs11UriError(
                f"character {char!r} must be percent-encoded in attribute {name!r} of the "
                f"PKCS#11 URI {shown!r}",
                _URI_HINT,
            )
    return bytes(out)


def _pct_encode(data: bytes, literal: frozenset[str]) -> str:
    return "".join(chr(b) if chr(b) in literal else f"%{b:02X}" for b in data)


def _utf8(value: bytes, name: str, shown: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise Pkcs11UriError(
            f"attribute {name!r} of the PKCS#11 URI {shown!r} is not UTF-8 once decoded",
            "token and object labels are UTF-8 text; only id holds raw bytes",
        ) from None


# --------------------------------------------------------------------------------------------
# Modules, tokens and logins (process-wide)
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Module:
    """One loaded PKCS#11 module; ``lock`` serialises every call into it (see module doc)."""

    path: str  # as the user gave it, for messages
    real_path: str
    lib: Pkcs11Lib
    lock: threading.RLock = field(default_factory=threading.RLock)


@dataclass(eq=False)
class _Login:
    """The session whose ``C_Login`` keeps a token logged in while any user needs it."""

    session: Session
    pin_digest: bytes
    users: int = 1


_modules: dict[str, _Module] = {}
_logins: dict[tuple[str, int], _Login] = {}
_registry_lock = threading.Lock()  # guards _modules; module locks guard everything else
_PIN_HASH_KEY: Final = secrets.token_bytes(32)


def _module_hint(path: str) -> str:
    return (
        f"set the key's module to the token vendor's PKCS#11 library (on Debian, SoftHSM2's is "
        f"{SOFTHSM_MODULE}); got {path}"
    )


def _load_module(module: str | os.PathLike[str]) -> _Module:
    """The module at ``module``, loaded (and ``C_Initialize``-d) once per real path."""
    path = os.fspath(module)
    if not os.path.exists(path):
        raise SigningKeyError(f"PKCS#11 module {path} does not exist", _module_hint(path))
    if not os.path.isfile(path):
        raise SigningKeyError(f"PKCS#11 module {path} is not a file", _module_hint(path))
    real_path = os.path.realpath(path)
    with _registry_lock:
        cached = _modules.get(real_path)
        if cached is not None:
            return cached
        try:
            lib = _load_pkcs11_lib(real_path)
        except p11err.PKCS11Error as exc:
            detail = str(exc)
            if "already initialized" in detail:
                raise SigningKeyError(
                    f"PKCS#11 module {path} was already initialised by other code in this process",
                    "load PKCS#11 modules only through ctstatus.keys.pkcs11",
                ) from None
            detail = detail.rpartition(f"{real_path}: ")[2] or type(exc).__name__
            raise SigningKeyError(
                f"{path} is not a usable PKCS#11 library ({detail})", _module_hint(path)
            ) from None
        loaded = _Module(path=path, real_path=real_path, lib=lib)
        _modules[real_path] = loaded
        log.debug("loaded PKCS#11 module %s (%s)", real_path, lib.library_description)
        return loaded


def _find_token(module: _Module, label: str) -> Token:
    """The one initialised token labelled ``label``; the error lists the labels present."""
    with module.lock:
        try:
            slots = module.lib.get_slots(token_present=True)
        except p11err.PKCS11Error as exc:
            raise map_pkcs11_error(exc, token=label, action="list its slots") from None
        tokens: list[Token] = []
        for slot in slots:
            try:
                token = slot.get_token()
            except (p11err.TokenNotPresent, p11err.TokenNotRecognised):
                continue
            if token.flags & TokenFlag.TOKEN_INITIALIZED:
                tokens.append(token)
    matches = [token for token in tokens if token.label == label]
    if not matches:
        present = ", ".join(sorted(token.label for token in tokens)) or "none"
        raise SigningKeyError(
            f"no token labelled '{label}' in {module.path}; tokens present: {present}",
            "check the token label in the key URI, and that the token is plugged in/initialised "
            "(for SoftHSM2, that SOFTHSM2_CONF points at the right config)",
        )
    if len(matches) > 1:
        raise SigningKeyError(
            f"{len(matches)} tokens are labelled '{label}' in {module.path}",
            "relabel the tokens so that each label is unique",
        )
    return matches[0]


def _open_login_session(token: Token, pin: Secret) -> Session:
    """``C_OpenSession`` + ``C_Login``; a separate function so tests can stand in for a token."""
    return token.open(user_pin=pin.reveal())


def _pin_digest(pin: Secret) -> bytes:
    return hmac.new(_PIN_HASH_KEY, pin.reveal().encode(), hashlib.sha256).digest()


def _secret_pin(pin: Secret | str, token: str) -> Secret:
    if isinstance(pin, Secret):
        return pin
    if isinstance(pin, str):
        return Secret(pin)
    raise SigningKeyError(
        f"the PIN for token '{token}' must be text, not {type(pin).__name__}",
        "this is a ctstatus bug: pass the PIN as a Secret",
    )


def _acquire_login(module: _Module, token: Token, pin: Secret) -> tuple[str, int]:
    """Log in to ``token``, or join its existing login; the result is for :func:`_release_login`."""
    key = (module.real_path, token.slot.slot_id)
    digest = _pin_digest(pin)
    with module.lock:
        login = _logins.get(key)
        if login is not None:
            if not hmac.compare_digest(login.pin_digest, digest):
                # The token is logged in with another PIN that worked, so this one is wrong.
                raise map_pkcs11_error(p11err.PinIncorrect(), token=token.label, action="log in")
            login.users += 1
            return key
        if token.flags & TokenFlag.USER_PIN_LOCKED:
            raise map_pkcs11_error(p11err.PinLocked(), token=token.label, action="log in")
        try:
            session = _open_login_session(token, pin)
        except p11err.PKCS11Error as exc:
            raise map_pkcs11_error(exc, token=token.label, action="log in") from None
        _logins[key] = _Login(session=session, pin_digest=digest)
        return key


def _release_login(module: _Module, key: tuple[str, int]) -> None:
    with module.lock:
        login = _logins[key]
        login.users -= 1
        if login.users == 0:
            del _logins[key]
            with contextlib.suppress(p11err.PKCS11Error):
                login.session.close()  # C_Logout + C_CloseSession


@contextlib.contextmanager
def _token_session(
    module_path: str | os.PathLike[str], token_label: str, pin: Secret | str, *, rw: bool
) -> Iterator[tuple[_Module, Token, Session]]:
    """A logged-in session on a token, for one-off work (generate, destroy)."""
    secret = _secret_pin(pin, token_label)
    module = _load_module(module_path)
    token = _find_token(module, token_label)
    login = _acquire_login(module, token, secret)
    try:
        with module.lock:
            try:
                session = token.open(rw=rw)
            except p11err.PKCS11Error as exc:
                raise map_pkcs11_error(exc, token=token_label, action="open a session") from None
        try:
            yield module, token, session
        finally:
            with module.lock, contextlib.suppress(p11err.PKCS11Error):
                session.close()
    finally:
        _release_login(module, login)


def map_pkcs11_error(exc: p11err.PKCS11Error, *, token: str, action: str) -> SigningKeyError:
    """Turn a python-pkcs11 exception into one clear line and a hint (never the PIN)."""
    where = f"token '{token}'"
    if isinstance(exc, p11err.PinIncorrect):
        return SigningKeyError(
            f"the PIN for {where} is wrong",
            "check the configured PIN; tokens lock the user PIN after a few wrong attempts",
        )
    if isinstance(exc, p11err.PinLocked):
        return SigningKeyError(
            f"the user PIN of {where} is locked",
            "a security officer must unblock it with the SO PIN (for example "
            "pkcs11-tool --login --login-type so --init-pin) before the key can be used",
        )
    if isinstance(exc, p11err.PinLenRange | p11err.PinInvalid):
        return SigningKeyError(
            f"the PIN given for {where} is not a valid PIN (wrong length or characters)",
            "check the configured PIN",
        )
    if isinstance(exc, p11err.PinExpired):
        return SigningKeyError(f"the user PIN of {where} has expired", "set a new user PIN")
    if isinstance(exc, p11err.UserPinNotInitialized):
        return SigningKeyError(
            f"{where} has no user PIN set", "initialise the user PIN with the SO PIN first"
        )
    if isinstance(exc, p11err.UserAlreadyLoggedIn | p11err.AnotherUserAlreadyLoggedIn):
        return SigningKeyError(
            f"{where} is already logged in by other code in this process",
            "open PKCS#11 keys only through ctstatus.keys.pkcs11",
        )
    if isinstance(exc, p11err.TokenNotPresent | p11err.DeviceRemoved):
        return SigningKeyError(
            f"{where} went away while trying to {action}", "reconnect the token and restart"
        )
    if isinstance(exc, p11err.SessionHandleInvalid | p11err.SessionClosed):
        return SigningKeyError(
            f"the session with {where} was lost while trying to {action}",
            "the token or its module was reset; reopen the key (restart ctstatus)",
        )
    if isinstance(exc, p11err.KeyHandleInvalid | p11err.ObjectHandleInvalid):
        return SigningKeyError(
            f"the key in {where} disappeared while trying to {action}",
            "the key was deleted from the token; restore it or configure another key",
        )
    if isinstance(exc, p11err.MechanismInvalid):
        return SigningKeyError(
            f"{where} does not support the mechanism needed to {action}",
            "use a key type the token supports",
        )
    if isinstance(exc, p11err.TokenWriteProtected | p11err.SessionReadOnly):
        return SigningKeyError(f"{where} is read-only, cannot {action}", "use a writable token")
    detail = str(exc)
    name = type(exc).__name__
    return SigningKeyError(
        f"{where} failed to {action} ({name}{': ' + detail if detail else ''})",
        "check the token (and its module's logs); this is not a ctstatus configuration problem",
    )


# --------------------------------------------------------------------------------------------
# Keys in a token
# --------------------------------------------------------------------------------------------

_EC_PARAMS: Final[dict[bytes, KeyAlgorithm]] = {
    bytes.fromhex("06082a8648ce3d030107"): KeyAlgorithm.ECDSA_P256,  # prime256v1
    bytes.fromhex("06052b81040022"): KeyAlgorithm.ECDSA_P384,  # secp384r1
}
_EC_PARAMS_OF: Final = {algorithm: der for der, algorithm in _EC_PARAMS.items()}
_SHA256_DIGEST_INFO: Final = bytes.fromhex("3031300d060960864801650304020105000420")
_SELF_TEST_DATA: Final = b"ctstatus: does the token key match its public key?"


def _attribute(obj: Object, attribute: Attribute, token: str) -> object:
    try:
        value: object = obj[attribute]
    except p11err.PKCS11Error as exc:
        raise map_pkcs11_error(exc, token=token, action=f"read {attribute.name}") from None
    return value


def _bytes_attribute(obj: Object, attribute: Attribute, token: str) -> bytes:
    value = _attribute(obj, attribute, token)
    if not isinstance(value, bytes):
        raise SigningKeyError(
            f"token '{token}' returned {type(value).__name__} for {attribute.name}",
            "the token or its module is misbehaving",
        )
    return value


def _key_template(ref: Pkcs11KeyRef, object_class: ObjectClass) -> dict[Attribute, object]:
    template: dict[Attribute, object] = {Attribute.CLASS: object_class}
    if ref.label is not None:
        template[Attribute.LABEL] = ref.label
    if ref.key_id is not None:
        template[Attribute.ID] = ref.key_id
    return template


def _find_objects(session: Session, template: dict[Attribute, object], token: str) -> list[Object]:
    try:
        return list(session.get_objects(dict(template)))
    except p11err.PKCS11Error as exc:
        raise map_pkcs11_error(exc, token=token, action="search for keys") from None


def _public_key_from(obj: Object, key_type: object, ref: Pkcs11KeyRef) -> PublicKey:
    """The public key in a token object: EC_PARAMS/EC_POINT, or MODULUS/PUBLIC_EXPONENT."""
    token = ref.token
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(_bytes_attribute(obj, Attribute.MODULUS, token))
        exponent = int.from_bytes(_bytes_attribute(obj, Attribute.PUBLIC_EXPONENT, token))
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    params = _bytes_attribute(obj, Attribute.EC_PARAMS, token)
    algorithm = _EC_PARAMS.get(params)
    if algorithm is None:
        raise SigningKeyError(
            f"the key {ref.uri} is on an unsupported curve (EC parameters {params.hex()})",
            "the Web PKI allows P-256 and P-384 (BR §6.1.5); generate a key on one of those",
        )
    point = _bytes_attribute(obj, Attribute.EC_POINT, token)
    size = (algorithm.curve.key_size + 7) // 8
    if len(point) == 2 + 1 + 2 * size and point[0] == 0x04 and point[1] == 1 + 2 * size:
        point = point[2:]  # DER OCTET STRING, as PKCS#11 specifies (some tokens send it raw)
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(algorithm.curve, point)
    except ValueError:
        raise SigningKeyError(
            f"the public key of {ref.uri} is not a valid point on {algorithm.curve.name}",
            "the token or its module is misbehaving",
        ) from None


class Pkcs11Signer:
    """A :class:`~ctstatus.keys.signer.Signer` whose private key stays in a PKCS#11 token.

    Opening finds the private key named by the URI (exactly one), reads the public key from the
    matching public-key object (or, for RSA, from the private key), checks that the token offers
    the mechanism, and signs a test message to prove the pair matches. One session is kept open
    for the signer's life; calls are serialised per module, so a signer may be shared by threads.
    """

    def __init__(
        self, module: str | os.PathLike[str], key: Pkcs11KeyRef | str, pin: Secret | str
    ) -> None:
        self._ref = key if isinstance(key, Pkcs11KeyRef) else parse_pkcs11_uri(key)
        self._closed = True
        secret = _secret_pin(pin, self._ref.token)
        with contextlib.ExitStack() as stack:
            self._module = _load_module(module)
            token = _find_token(self._module, self._ref.token)
            login = _acquire_login(self._module, token, secret)
            stack.callback(_release_login, self._module, login)
            with self._module.lock:
                try:
                    self._session = token.open()  # already logged in via the shared login
                except p11err.PKCS11Error as exc:
                    raise self._error(exc, "open a session") from None
                stack.callback(self._close_session)
                self._private = self._find_private_key()
                self._algorithm, self._public_key = self._read_public_key()
                self._mechanism = self._choose_mechanism(token)
            self._closed = False
            stack.callback(setattr, self, "_closed", True)
            if not verify_signature(self._public_key, self.sign(_SELF_TEST_DATA), _SELF_TEST_DATA):
                raise SigningKeyError(
                    f"the public key stored with {self._ref.uri} does not match its private key",
                    "the token holds a mismatched key pair under this label/id; fix the token",
                )
            self._cleanup = stack.pop_all()
        self._cleanup.callback(log.debug, "closed PKCS#11 signer %s", self._ref.uri)
        log.debug("opened PKCS#11 signer %s (%s)", self._ref.uri, self._algorithm.value)

    # -- opening -----------------------------------------------------------------------------

    def _error(self, exc: p11err.PKCS11Error, action: str) -> SigningKeyError:
        return map_pkcs11_error(exc, token=self._ref.token, action=action)

    def _find_private_key(self) -> SignMixin:
        found = _find_objects(
            self._session, _key_template(self._ref, ObjectClass.PRIVATE_KEY), self._ref.token
        )
        if not found:
            raise SigningKeyError(
                f"no private key {self._ref.uri} in token '{self._ref.token}'",
                "check the object label/id in the key URI (pkcs11-tool --list-objects --login "
                "shows the keys), and that the PIN is the user PIN of that token",
            )
        if len(found) > 1:
            raise SigningKeyError(
                f"{len(found)} private keys match {self._ref.uri}",
                "add the key's id to the URI (or relabel the keys) so exactly one matches",
            )
        private = found[0]
        if not isinstance(private, SignMixin):
            raise SigningKeyError(
                f"the object {self._ref.uri} in token '{self._ref.token}' cannot sign",
                "name a private key that has CKA_SIGN set",
            )
        if _attribute(private, Attribute.SIGN, self._ref.token) is not True:
            raise SigningKeyError(
                f"the key {self._ref.uri} may not sign (CKA_SIGN is false)",
                "generate a signing key (ctstatus generates keys with CKA_SIGN only)",
            )
        return private

    def _read_public_key(self) -> tuple[KeyAlgorithm, PublicKey]:
        token = self._ref.token
        key_type = _attribute(self._private, Attribute.KEY_TYPE, token)
        if key_type not in (KeyType.EC, KeyType.RSA):
            name = getattr(key_type, "name", str(key_type))
            raise SigningKeyError(
                f"the key {self._ref.uri} is of unsupported type {name}",
                "ctstatus signs with ECDSA P-256/P-384 or RSA 2048/3072/4096 keys",
            )
        # Prefer the public-key object with the private key's own id and label: it is the pair.
        template = _key_template(self._ref, ObjectClass.PUBLIC_KEY)
        template[Attribute.KEY_TYPE] = key_type
        key_id = _attribute(self._private, Attribute.ID, token)
        if isinstance(key_id, bytes) and key_id:
            template[Attribute.ID] = key_id
        candidates = _find_objects(self._session, template, token)
        if len(candidates) == 1:
            public = _public_key_from(candidates[0], key_type, self._ref)
        elif key_type == KeyType.RSA:
            public = _public_key_from(self._private, key_type, self._ref)
        else:
            problem = "no public key object" if not candidates else "several public key objects"
            raise SigningKeyError(
                f"{problem} for the EC key {self._ref.uri} in token '{token}'",
                "an EC private key does not hold its public point; store exactly one public key "
                "object with the same label and id",
            )
        try:
            return KeyAlgorithm.of(public), public
        except ValueError as exc:
            raise SigningKeyError(
                f"the key {self._ref.uri} is not usable for the Web PKI: {exc}",
                "ctstatus signs with ECDSA P-256/P-384 or RSA 2048/3072/4096 keys",
            ) from None

    def _choose_mechanism(self, token: Token) -> Mechanism:
        try:
            offered = token.slot.get_mechanisms()
        except p11err.PKCS11Error as exc:
            raise self._error(exc, "list its mechanisms") from None
        wanted = (
            [Mechanism.ECDSA]
            if self._algorithm.is_ec
            else [Mechanism.SHA256_RSA_PKCS, Mechanism.RSA_PKCS]
        )
        for mechanism in wanted:
            if mechanism in offered:
                return mechanism
        raise SigningKeyError(
            f"token '{self._ref.token}' offers none of {', '.join(m.name for m in wanted)} "
            f"to sign with {self._ref.uri}",
            "use a token (or key type) that supports raw ECDSA or RSA PKCS#1 v1.5 signing",
        )

    # -- Signer ------------------------------------------------------------------------------

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._algorithm

    @property
    def description(self) -> str:
        """The key's URI (the module path and PIN are not part of it)."""
        return self._ref.uri

    @property
    def key_ref(self) -> Pkcs11KeyRef:
        return self._ref

    @property
    def module_path(self) -> str:
        return self._module.path

    @property
    def closed(self) -> bool:
        return self._closed

    def public_key(self) -> PublicKey:
        return self._public_key

    def private_key(self) -> CertificateIssuerPrivateKeyTypes | None:
        """Always ``None``: the key cannot leave the token, so builders go through :meth:`sign`."""
        return None

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``: ECDSA over a host-computed digest (DER), or PKCS#1 v1.5 SHA-256."""
        if self._algorithm.is_ec or self._mechanism is Mechanism.RSA_PKCS:
            digest = hashlib.new(self._algorithm.hash_algorithm.name, data).digest()
            payload = digest if self._algorithm.is_ec else _SHA256_DIGEST_INFO + digest
        else:
            payload = data  # CKM_SHA256_RSA_PKCS hashes in the token
        with self._module.lock:
            if self._closed:
                raise SigningKeyError(
                    f"the PKCS#11 signer for {self._ref.uri} is closed",
                    "this is a ctstatus bug: a closed signer was used",
                )
            try:
                raw = self._private.sign(payload, mechanism=self._mechanism)
            except p11err.PKCS11Error as exc:
                raise self._error(exc, "sign") from None
        if not isinstance(raw, bytes):
            raise SigningKeyError(
                f"token '{self._ref.token}' returned no signature", "the token is misbehaving"
            )
        if not self._algorithm.is_ec:
            return raw
        size = (self._algorithm.curve.key_size + 7) // 8
        if len(raw) != 2 * size:
            raise SigningKeyError(
                f"token '{self._ref.token}' returned a {len(raw)}-byte ECDSA signature "
                f"(expected {2 * size})",
                "the token or its module is misbehaving",
            )
        return encode_dss_signature(int.from_bytes(raw[:size]), int.from_bytes(raw[size:]))

    # -- lifetime ----------------------------------------------------------------------------

    def _close_session(self) -> None:
        with self._module.lock, contextlib.suppress(p11err.PKCS11Error):
            self._session.close()  # no C_Logout: this session did not log in

    def close(self) -> None:
        """Close the session; the token is logged out when its last user closes. Idempotent."""
        with self._module.lock:
            if self._closed:
                return
            self._closed = True
        self._cleanup.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Safe on a half-built signer too (tracebacks that show locals call it).
        state = "closed" if getattr(self, "_closed", True) else self._algorithm.value
        ref = getattr(self, "_ref", None)
        return f"<Pkcs11Signer {ref.uri if ref is not None else '?'} ({state})>"


def generate_pkcs11_key(
    module: str | os.PathLike[str],
    token_label: str,
    label: str,
    algorithm: KeyAlgorithm,
    pin: Secret | str,
) -> Pkcs11Signer:
    """Generate a signing key pair in a token and open it.

    The private key is a token object, private, sensitive, never extractable, and may only sign
    (CKA_SIGN; no decrypt/unwrap/derive). Both halves share the label and a random 16-byte id;
    the returned signer's URI names both, so :func:`destroy_pkcs11_key` removes exactly them.
    Refuses if any object in the token already has ``label``.
    """
    algorithm = KeyAlgorithm(algorithm)
    ref = Pkcs11KeyRef(token=token_label, label=label, key_id=secrets.token_bytes(16))
    with _token_session(module, token_label, pin, rw=True) as (mod, token, session), mod.lock:
        if _find_objects(session, {Attribute.LABEL: label}, token_label):
            raise SigningKeyError(
                f"token '{token_label}' already holds an object labelled '{label}'",
                "choose another key label; ctstatus never reuses or overwrites a key",
            )
        key_type = KeyType.EC if algorithm.is_ec else KeyType.RSA
        key_length = None if algorithm.is_ec else algorithm.rsa_bits
        mechanism = (
            Mechanism.EC_KEY_PAIR_GEN if algorithm.is_ec else Mechanism.RSA_PKCS_KEY_PAIR_GEN
        )
        try:
            offered = token.slot.get_mechanisms()
        except p11err.PKCS11Error as exc:
            raise map_pkcs11_error(exc, token=token_label, action="list mechanisms") from None
        if mechanism not in offered:
            raise SigningKeyError(
                f"token '{token_label}' cannot generate {algorithm.value} keys "
                f"({mechanism.name} not offered)",
                "choose another key algorithm",
            )
        public_template: dict[Attribute, object] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
        }
        if algorithm.is_ec:
            public_template[Attribute.EC_PARAMS] = _EC_PARAMS_OF[algorithm]
        private_template: dict[Attribute, object] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        try:
            session.generate_keypair(
                key_type,
                key_length,
                id=ref.key_id,
                label=label,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                mechanism=mechanism,
                public_template=public_template,
                private_template=private_template,
            )
        except p11err.PKCS11Error as exc:
            raise map_pkcs11_error(
                exc, token=token_label, action=f"generate a {algorithm.value} key"
            ) from None
    log.info("generated %s key %s", algorithm.value, ref.uri)
    try:
        return Pkcs11Signer(module, ref, pin)
    except BaseException:
        with contextlib.suppress(SigningKeyError):
            destroy_pkcs11_key(module, ref, pin)
        raise


def destroy_pkcs11_key(
    module: str | os.PathLike[str], key: Pkcs11KeyRef | str, pin: Secret | str
) -> int:
    """Delete the private and public key objects matching ``key``; returns how many.

    Meant to roll back a failed ``ctstatus init``, so nothing half-made stays in the token: pass
    the generated signer's ``key_ref`` (label *and* id). Close that signer first. Finding nothing
    is not an error (the rollback may run twice).
    """
    ref = key if isinstance(key, Pkcs11KeyRef) else parse_pkcs11_uri(key)
    destroyed = 0
    with _token_session(module, ref.token, pin, rw=True) as (mod, _token, session), mod.lock:
        for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for obj in _find_objects(session, _key_template(ref, object_class), ref.token):
                try:
                    obj.destroy()
                except p11err.PKCS11Error as exc:
                    raise map_pkcs11_error(
                        exc, token=ref.token, action=f"delete {ref.uri}"
                    ) from None
                destroyed += 1
    log.info("destroyed %d object(s) of %s", destroyed, ref.uri)
    return destroyed
