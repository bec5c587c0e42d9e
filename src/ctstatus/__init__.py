"""ctstatus: a CA whose ledger answers for every serial before its precertificate is signed."""

__version__ = "0.1.0"
