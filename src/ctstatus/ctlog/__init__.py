"""A real RFC 6962 + static-ct-api CT log server, with fault injection (issue #3).

Modules, one job each:

* :mod:`~ctstatus.ctlog.config` -- the strict TOML config (``[server]``, ``[[log]]``).
* :mod:`~ctstatus.ctlog.storage` -- one SQLite database per log (WAL, synchronous=FULL).
* :mod:`~ctstatus.ctlog.tree` -- tile-level node hashes, appending, proofs from stored nodes.
* :mod:`~ctstatus.ctlog.validate` -- chain and precertificate rules for add-(pre-)chain.
* the fast poison cut and issuer-name slice of the hot path are :mod:`ctstatus.ct.tbs`.
* :mod:`~ctstatus.ctlog.errors` -- request errors and their HTTP status.
* :mod:`~ctstatus.ctlog.sequencer` -- the pool and group commit; SCTs only after commit.
* :mod:`~ctstatus.ctlog.service` -- one running log: the write path and every read.
* :mod:`~ctstatus.ctlog.static` -- static-ct-api hash and data tiles.
* :mod:`~ctstatus.ctlog.faults` -- deterministic fault injection.
* :mod:`~ctstatus.ctlog.app` -- the ASGI app (RFC 6962, static-ct-api, loopback admin).
* :mod:`~ctstatus.ctlog.server` -- keys, stores, uvicorn, the v3 log list.
* :mod:`~ctstatus.ctlog.setup` -- ``ctstatus log init``.
"""
