"""The API's OpenAPI 3.1 document, written by hand so it states exactly what the code does."""

from __future__ import annotations

from typing import Any

SERIAL = {
    "name": "serial",
    "in": "path",
    "required": True,
    "description": "The serial number in hex (``0x`` and colons allowed).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}
CA = {
    "type": "string",
    "description": "The CA's name in the instance's config (e.g. issuing-ca); optional in "
    "requests, where it must be the CA this API issues from.",
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "hint": {"type": ["string", "null"]}},
}
RECORD = {
    "type": "object",
    "required": ["ca", "serial", "state", "not_before", "not_after", "crl_shard"],
    "properties": {
        "ca": CA,
        "serial": {"type": "string"},
        "state": {
            "type": "string",
            "enum": [
                "reserved",
                "never_signed",
                "precert_signed",
                "issued",
                "abandoned",
                "revoked",
            ],
        },
        "not_before": {"type": "string", "format": "date-time"},
        "not_after": {"type": "string", "format": "date-time"},
        "crl_shard": {"type": "integer"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "revocation_reason": {
            "type": ["string", "null"],
            "description": "RFC 5280 name, e.g. keyCompromise.",
        },
        "certificate_pem": {"type": ["string", "null"]},
        "precertificate_pem": {"type": ["string", "null"]},
    },
}
EVENT = {
    "type": "object",
    "required": ["at", "actor", "action"],
    "properties": {
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"},
        "action": {"type": "string"},
        "from": {"type": ["string", "null"]},
        "to": {"type": ["string", "null"]},
        "detail": {"type": "object"},
    },
}
ISSUED = {
    "type": "object",
    "required": ["ca", "serial", "state", "chain_pem", "scts"],
    "properties": {
        "ca": CA,
        "serial": {"type": "string"},
        "state": {"type": "string", "const": "issued"},
        "not_before": {"type": "string", "format": "date-time"},
        "not_after": {"type": "string", "format": "date-time"},
        "chain_pem": {"type": "string"},
        "scts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "log": {"type": "string"},
                    "operator": {"type": "string"},
                    "log_id": {"type": "string", "description": "base64"},
                    "timestamp_ms": {"type": "integer"},
                },
            },
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


AUTH = {"401": _error("No or wrong bearer token.")}


def document(max_body: int) -> dict[str, Any]:
    """The OpenAPI document served at ``/api/openapi.json``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ctstatus issuance API",
            "version": "1",
            "description": (
                "Issue TLS server certificates from CSRs (precertificate, CT logs, certificate), "
                "fetch and revoke them, and read a serial's lifecycle from the ledger. Issuance "
                "and revocation need `Authorization: Bearer <token>` (the token `ctstatus up` "
                f"created). Request bodies are limited to {max_body} bytes."
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/certificates": {
                "post": {
                    "operationId": "issue",
                    "summary": "Issue a certificate for the key and names of a CSR.",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["csr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "csr": {
                                            "type": "string",
                                            "description": "PEM certificate signing request.",
                                        },
                                        "lifetime_days": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": 398,
                                        },
                                        "request_id": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": 200,
                                            "description": (
                                                "Names the order: asking again with it and "
                                                "the same CSR returns the same certificate."
                                            ),
                                        },
                                        "ca": CA,
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _ok(
                            "Issued before under this request_id and CSR: the same certificate.",
                            ISSUED,
                        ),
                        "201": _ok("Issued: the chain and the SCTs embedded in it.", ISSUED),
                        "400": _error("The body is not the JSON object described here."),
                        **AUTH,
                        "404": _error("No CA of that name issues here."),
                        "409": _error(
                            "request_id already has a serial for another CSR, or is being issued."
                        ),
                        "413": _error("The body is too large."),
                        "415": _error("The body is not application/json."),
                        "422": _error(
                            "The CSR or a name cannot be certified (parse, signature, key, "
                            "name syntax, or a Baseline Requirements lint error)."
                        ),
                        "503": _error(
                            "The CT policy was not met; the precertificate was abandoned (and "
                            "revoked per policy). Retry later."
                        ),
                    },
                }
            },
            "/api/v1/certificates/{serial}": {
                "get": {
                    "operationId": "getCertificate",
                    "summary": "A serial's record with its certificate and precertificate.",
                    "parameters": [SERIAL],
                    "responses": {
                        "200": _ok("The record.", RECORD),
                        "400": _error("Not a serial number."),
                        "404": _error("No such serial."),
                    },
                }
            },
            "/api/v1/certificates/{serial}/revoke": {
                "post": {
                    "operationId": "revoke",
                    "summary": "Revoke a certificate or a precertificate-only serial.",
                    "security": [{"bearer": []}],
                    "parameters": [SERIAL],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "reason": {
                                            "type": "string",
                                            "enum": [
                                                "unspecified",
                                                "keyCompromise",
                                                "affiliationChanged",
                                                "superseded",
                                                "cessationOfOperation",
                                                "privilegeWithdrawn",
                                            ],
                                        },
                                        "ca": CA,
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _ok("Revoked; OCSP follows within a second.", RECORD),
                        "400": _error("Not a serial number, or a bad body."),
                        **AUTH,
                        "404": _error("No such serial, or no CA of that name here."),
                        "409": _error("The serial cannot be revoked from its state."),
                        "413": _error("The body is too large."),
                        "415": _error("The body is not application/json."),
                    },
                }
            },
            "/api/v1/serials/{serial}": {
                "get": {
                    "operationId": "lifecycle",
                    "summary": "A serial's state and its whole ledger journal.",
                    "parameters": [SERIAL],
                    "responses": {
                        "200": _ok(
                            "State and journal.",
                            {
                                "type": "object",
                                "required": ["record", "journal"],
                                "properties": {
                                    "record": RECORD,
                                    "journal": {"type": "array", "items": EVENT},
                                },
                            },
                        ),
                        "400": _error("Not a serial number."),
                        "404": _error("No such serial."),
                    },
                }
            },
        },
    }
