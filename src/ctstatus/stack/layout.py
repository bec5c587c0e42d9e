"""The state directory of ``ctstatus up`` and how it is created on first start.

Layout (all created once; a restart reuses everything, so nothing is lost)::

    STATE/ca/          the CA instance (``ctstatus init``): keys, certificates, SQLite ledger
    STATE/logs/        three CT logs of three operators (``ctstatus log init``)
    STATE/watch.sqlite3  the watcher's database
    STATE/api-token.sha256  the API token's hash (the server never keeps the token itself)
    STATE/api-token    the token, for the operator (mode 0600; delete it once saved elsewhere)
    STATE/urls.json    the URLs of the running stack (rewritten at every start)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctstatus.api.auth import TOKEN_HASH_FILE, new_token, write_token_hash
from ctstatus.keys.files import write_private_file

DEFAULT_PUBLIC_BASE = "http://pki.example.com"
LOG_COUNT = 3


@dataclass(frozen=True)
class StackPaths:
    state: Path

    @property
    def instance(self) -> Path:
        return self.state / "ca"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def log_config(self) -> Path:
        return self.logs / "ctlog.toml"

    @property
    def log_list(self) -> Path:
        return self.logs / "loglist.json"

    @property
    def watch_db(self) -> Path:
        return self.state / "watch.sqlite3"

    @property
    def token_hash(self) -> Path:
        return self.state / TOKEN_HASH_FILE

    @property
    def token(self) -> Path:
        return self.state / "api-token"

    @property
    def urls(self) -> Path:
        return self.state / "urls.json"


def ensure_state(
    paths: StackPaths,
    *,
    public_base: str = DEFAULT_PUBLIC_BASE,
    say: Callable[[str], None] = print,
) -> str | None:
    """Create whatever part of the state directory is missing; the new API token, if made.

    The CA's URLs name ``public_base`` (pkilint wants a public host); the stack serves them on
    127.0.0.1 and the watcher maps that host to the local status server.
    """
    from ctstatus.ca.bootstrap import init_instance
    from ctstatus.config import new_instance_config
    from ctstatus.ctlog.setup import init_log_server
    from ctstatus.instance import Instance

    paths.state.mkdir(parents=True, exist_ok=True)
    if not (paths.instance / "ctstatus.toml").exists():
        say(f"creating the CA instance in {paths.instance} (root + issuing CA, SQLite ledger)")
        config = new_instance_config(base_url=public_base, log_list=Path("../logs/loglist.json"))
        init_instance(paths.instance, config, progress=lambda step: say(f"  {step}"))
    if not paths.log_config.exists():
        say(f"creating three CT logs of three operators in {paths.logs}")
        instance = Instance.open(paths.instance)
        root = instance.path(instance.config.ca.root.certificate)
        init_log_server(paths.logs, count=LOG_COUNT, roots=[root], port=0)
    token = None
    if not paths.token_hash.exists():
        token = new_token()
        paths.token.unlink(missing_ok=True)
        write_private_file(paths.token, (token + "\n").encode())
        write_token_hash(paths.token_hash, token)
    return token
