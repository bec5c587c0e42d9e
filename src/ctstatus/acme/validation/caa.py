"""CAA (RFC 8659) with RFC 8657's accounturi and validationmethods, as BR §3.2.2.8 asks.

Steps, as in the RFC: (1) look up CAA at the name and each parent up to the TLD (the resolver
follows CNAMEs; climbing goes up the name asked for, not the CNAME target); (2) the relevant
RRset is the first non-empty one; a failed look-up at or below it refuses issuance, NXDOMAIN or
no records means go on up; (3) a critical tag we do not know refuses; (4) for a wildcard the
issuewild records count if there are any, else issue; for other names issue; none of those
means permission; (5) permission needs one record naming us whose parameters admit this
account and method.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from .dnsquery import Answer, Lookup
from .errors import ValidationError

KNOWN_TAGS = frozenset(
    {"issue", "issuewild", "iodef", "contactemail", "contactphone", "issuemail", "issuevmc"}
)
CRITICAL = 0x80
_PARAM_TAG = re.compile(r"^[A-Za-z0-9](?:-*[A-Za-z0-9])*$")
_PARAM_VALUE = re.compile(r"^[\x21-\x3a\x3c-\x7e]*$")
_ISSUER = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$"
)


@dataclass(frozen=True)
class IssueValue:
    """A parsed issue/issuewild value; ``issuer`` is None for ``;`` (no one may issue)."""

    issuer: str | None
    parameters: dict[str, str]


def parse_issue_value(value: str) -> IssueValue:
    """RFC 8659 §4.2 ``issuer-domain-name [; tag=value]*``; ValueError when malformed."""
    issuer_text, _, rest = value.partition(";")
    issuer_text = issuer_text.strip(" \t")
    if issuer_text and not _ISSUER.match(issuer_text):
        raise ValueError(f"issuer domain name {issuer_text!r} is malformed")
    parameters: dict[str, str] = {}
    for part in rest.split(";") if rest.strip(" \t") else []:
        part = part.strip(" \t")
        tag, eq, val = part.partition("=")
        if not eq or not _PARAM_TAG.match(tag) or not _PARAM_VALUE.match(val):
            raise ValueError(f"parameter {part!r} is malformed")
        key = tag.lower()
        if key in parameters:
            raise ValueError(f"parameter {key!r} appears twice")
        parameters[key] = val
    return IssueValue(issuer_text.lower() or None, parameters)


def _names(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def _describe(flags: int, tag: str, value: str) -> str:
    return f'{flags} {tag} "{value}"'


async def check_caa(
    lookup: Lookup,
    domain: str,
    *,
    wildcard: bool,
    account_uri: str,
    method: str,
    identities: tuple[str, ...],
) -> None:
    """Permit or raise: ValidationError("caa") when the records forbid, ("dns") when a
    relevant look-up fails."""
    if domain.startswith("*."):
        domain, wildcard = domain[2:], True
    names = _names(domain)
    # 1. every name at once; only those up to the relevant one matter.
    results = await asyncio.gather(
        *(lookup.query(name, "CAA") for name in names), return_exceptions=True
    )
    # 2. the relevant RRset.
    relevant: tuple[str, Answer] | None = None
    for name, result in zip(names, results, strict=True):
        if isinstance(result, ValidationError):
            raise ValidationError(
                "dns",
                f"{result.detail}; a CAA look-up that fails refuses issuance (BR §3.2.2.8)",
            )
        if isinstance(result, BaseException):
            raise result
        if result.status == "ok" and result.records:
            relevant = (name, result)
            break
    if relevant is None:
        return
    at, answer = relevant
    records = []
    for rdata in answer.records:
        flags = int(getattr(rdata, "flags", 0))
        tag = bytes(getattr(rdata, "tag", b"")).decode("ascii", "replace").lower()
        value = bytes(getattr(rdata, "value", b"")).decode("utf-8", "replace")
        records.append((flags, tag, value))
    # 3. critical tags we do not understand.
    for flags, tag, value in records:
        if flags & CRITICAL and tag not in KNOWN_TAGS:
            raise ValidationError(
                "caa",
                f"CAA record at {at} ({_describe(flags, tag, value)}) has the critical flag on "
                f"tag {tag!r}, which we do not understand, so we may not issue (RFC 8659 §4.1)",
            )
    # 4. issue or issuewild.
    has_issuewild = any(tag == "issuewild" for _, tag, _ in records)
    kind = "issuewild" if wildcard and has_issuewild else "issue"
    chosen = [r for r in records if r[1] == kind]
    if not chosen:
        return
    # 5. one record that names us and admits this account and method.
    ours = {i.lower().rstrip(".") for i in identities}
    us = ", ".join(sorted(ours)) or "no CAA identity configured"
    reasons = []
    for flags, tag, value in chosen:
        text = _describe(flags, tag, value)
        try:
            parsed = parse_issue_value(value)
        except ValueError as e:
            reasons.append(f"{text}: malformed ({e})")
            continue
        if parsed.issuer is None:
            reasons.append(f"{text}: no CA may issue")
            continue
        if parsed.issuer not in ours:
            reasons.append(f"{text}: names {parsed.issuer}, not us ({us})")
            continue
        uri = parsed.parameters.get("accounturi")
        if uri is not None and uri != account_uri:
            reasons.append(f"{text}: accounturi is {uri}, not this account {account_uri}")
            continue
        methods = parsed.parameters.get("validationmethods")
        if methods is not None and method not in [m.strip() for m in methods.split(",")]:
            reasons.append(f"{text}: validationmethods {methods} does not include {method}")
            continue
        return
    name = f"*.{domain}" if wildcard else domain
    raise ValidationError(
        "caa",
        f"CAA {kind} records at {at} forbid issuance for {name}: " + "; ".join(reasons),
    )
