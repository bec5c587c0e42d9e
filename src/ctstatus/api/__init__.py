"""The issuance HTTP API: issue from a CSR, fetch, revoke, and a serial's lifecycle."""
