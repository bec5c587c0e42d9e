"""Which DNS names we accept as ACME identifiers, and which challenges each may use.

The Public Suffix List is the one bundled with ``publicsuffixlist`` (no fetch at run time),
ICANN and private sections both, and unknown TLDs are refused: ``.test``, ``.local`` or
``.internal`` are internal names the BRs forbid (§4.2.2).
"""

from __future__ import annotations

import functools
import ipaddress
import re

import idna
from publicsuffixlist import PublicSuffixList

from .errors import ValidationError

CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")
WILDCARD_CHALLENGES = ("dns-01",)

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_MAX_NAME = 253


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList(accept_unknown=False)


def _refuse(name: str, why: str) -> ValidationError:
    return ValidationError("rejectedIdentifier", f"{name!r}: {why}")


def _a_label(label: str, original: str) -> str:
    """One label as an IDNA 2008 A-label; an ``xn--`` label must decode to a valid U-label."""
    if label.isascii():
        label = label.lower()
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError as e:
                raise _refuse(original, f"label {label!r} is not valid punycode ({e})") from e
        elif len(label) >= 4 and label[2:4] == "--":
            raise _refuse(original, f"label {label!r} has '--' in positions 3-4 (RFC 5891)")
        return label
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError as e:
        raise _refuse(original, f"label {label!r} is not a valid IDNA 2008 label ({e})") from e


def check_identifier(name: str) -> str:
    """The normalized name (lowercase, IDNA A-labels, optional leading ``*.``), or
    ValidationError("rejectedIdentifier") for IP addresses, bad syntax, a TLD not in the Public
    Suffix List, a name that is itself a public suffix (``com``, ``*.com``, ``*.co.uk``,
    ``github.io``), or a ``*`` anywhere but as the whole leftmost label."""
    if not isinstance(name, str) or not name:
        raise _refuse(str(name), "empty identifier")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise _refuse(name, "IP address identifiers are not accepted, only DNS names")
    if name.endswith("."):
        raise _refuse(name, "trailing dot: send the name without it")
    wildcard = name.startswith("*.")
    base = name[2:] if wildcard else name
    if "*" in base:
        raise _refuse(name, "'*' is allowed only as the whole leftmost label ('*.example.com')")
    labels = [_a_label(label, name) for label in base.split(".")]
    for label in labels:
        if not label:
            raise _refuse(name, "empty label")
        if len(label) > 63:
            raise _refuse(name, f"label {label[:20]!r}... is longer than 63 octets")
        if not _LABEL.match(label):
            raise _refuse(
                name,
                f"label {label!r} has characters other than letters, digits and '-'"
                " or starts or ends with '-'",
            )
    ascii_name = ".".join(labels)
    if len(ascii_name) > _MAX_NAME:
        raise _refuse(name, f"longer than {_MAX_NAME} octets")
    if labels[-1].isdigit():
        raise _refuse(name, "the last label is numeric")
    psl = _psl()
    if psl.publicsuffix(ascii_name) is None:
        raise _refuse(name, f"top-level domain {labels[-1]!r} is not in the Public Suffix List")
    if psl.privatesuffix(ascii_name) is None:
        what = f"'*.{ascii_name}'" if wildcard else repr(ascii_name)
        raise _refuse(
            name,
            f"{what} is a public suffix (Public Suffix List): no one can prove control of it",
        )
    return f"*.{ascii_name}" if wildcard else ascii_name


def is_wildcard(identifier: str) -> bool:
    """Whether a checked identifier is a wildcard (``*.example.com``)."""
    return identifier.startswith("*.")


def base_domain(identifier: str) -> str:
    """The name without its ``*.``: where dns-01 and CAA look for a wildcard."""
    return identifier[2:] if is_wildcard(identifier) else identifier


def allowed_challenges(identifier: str) -> tuple[str, ...]:
    """The challenge types for a (checked) identifier: wildcards get dns-01 only (RFC 8555
    §7.1.3); the Validator also refuses http-01/tls-alpn-01 for a wildcard."""
    return WILDCARD_CHALLENGES if is_wildcard(identifier) else CHALLENGES
