"""The dashboard: server-rendered pages (Jinja2) over the ledger, the logs and the watcher."""
