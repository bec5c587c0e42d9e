"""The one-machine stack behind ``ctstatus up``: CA, three CT logs, OCSP/CRL, API, watcher, web."""
