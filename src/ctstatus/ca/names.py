"""Which DNS names a CA may certify at all: at or under a registrable domain.

Whoever asks (the ACME server after validation, the issuance API, ``ctstatus issue``), a name
that is itself a public suffix (``com``, ``*.com``, ``*.co.uk``, ``github.io``) can be proven
by no one, and a TLD outside the Public Suffix List is an internal name the BRs forbid
(§4.2.2). The list is the one bundled with ``publicsuffixlist`` (no fetch at run time), ICANN
and private sections both.
"""

from __future__ import annotations

import functools
import ipaddress
import re

import idna
from publicsuffixlist import PublicSuffixList

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_MAX_NAME = 253


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList(accept_unknown=False)


class NameRefused(ValueError):
    """A name no one can be certified for; ``str()`` says which and why."""


def _refuse(name: str, why: str) -> NameRefused:
    return NameRefused(f"{name!r}: {why}")


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


def registrable_name(name: str) -> str:
    """The normalized name (lowercase, IDNA A-labels, optional leading ``*.``), or
    NameRefused for IP addresses, bad syntax, a TLD not in the Public
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


def public_suffix(name: str) -> str | None:
    """The public suffix ``name`` (or its wildcard base) is, if it is one: ``com`` for ``com``
    or ``*.com``, ``github.io`` for ``*.github.io``; None for a name under a registrable
    domain, and for names the list does not know (internal names, judged by pkilint)."""
    base = name.lower().rstrip(".")
    base = base[2:] if base.startswith("*.") else base
    try:
        base = idna.encode(base, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None  # not a DNS name pkilint would pass either
    psl = _psl()
    if psl.publicsuffix(base) is None or psl.privatesuffix(base) is not None:
        return None
    return base
