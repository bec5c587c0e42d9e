"""The watcher: follow CT logs, check each (pre)certificate's status as a relying party would.

DESIGN.md: watch judges the CA from outside, like any relying party, and never imports ``ca``.
It reads logs through :mod:`ctstatus.ct`, asks OCSP responders and CRLs over HTTP, keeps its own
database (:mod:`ctstatus.watch.store`), and touches the ledger only in :mod:`.reconcile`.
"""
