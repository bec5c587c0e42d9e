"""ACME (RFC 8555) front door."""
