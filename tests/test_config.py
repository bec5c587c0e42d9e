"""Config: validated, documented defaults; every error names the file and the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ctstatus.config import load_config, new_instance_config, parse_config, render_config
from ctstatus.errors import ConfigError
from ctstatus.keys import KeyAlgorithm
from ctstatus.secrets import Secret, SecretSource


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ctstatus.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _base_toml() -> str:
    return render_config(new_instance_config())


def test_rendered_default_config_loads_back_to_itself(tmp_path: Path) -> None:
    config = new_instance_config()
    assert load_config(_write(tmp_path, render_config(config))) == config


@pytest.mark.parametrize(
    "options",
    [
        {"key_algorithm": KeyAlgorithm.RSA_3072, "root_key_algorithm": KeyAlgorithm.RSA_4096},
        {"passphrase_env": "MY_PASS", "ledger_url": "postgresql+psycopg://ca@db:5432/ledger"},
        {"pkcs11_token": "my token", "pkcs11_module": Path("/opt/hsm.so")},
        {"organization": 'Quote " and \\ backslash', "country": "DE"},
    ],
)
def test_every_init_option_round_trips(tmp_path: Path, options: dict[str, object]) -> None:
    config = new_instance_config(**options)  # type: ignore[arg-type]
    assert load_config(_write(tmp_path, render_config(config))) == config


def test_pkcs11_keys_are_named_by_rfc7512_uris() -> None:
    config = new_instance_config(pkcs11_token="my token")
    assert config.ca.issuing.key == "pkcs11:token=my%20token;object=issuing-ca"
    assert config.ca.issuing.key_is_pkcs11


def test_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _base_toml().replace("[ca]\n", "[ca]\nsurname = 1\n"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in error.value.message
    assert "unknown key 'ca.surname'" in error.value.message


def test_bad_value_is_named_with_its_key(tmp_path: Path) -> None:
    path = _write(tmp_path, _base_toml().replace('"ecdsa-p256"', '"dsa-1024"', 1))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "ca.root.key_algorithm" in error.value.message
    assert "'dsa-1024'" in error.value.message


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("# lifetime_days = 90", "lifetime_days = 398", "profiles.tls_server.lifetime_days"),
        ("# lifetime_days = 90", "lifetime_days = 201", "profiles.tls_server.lifetime_days"),
        ("# lifetime_days = 90", "lifetime_days = 0", "profiles.tls_server.lifetime_days"),
        ('country = "XX"', 'country = "Germany"', "ca.country"),
        ('base = "http://pki.example.com"', 'base = "https://pki.example.com"', "urls.base"),
        ('ocsp = "{base}/ocsp"', 'ocsp = "{base}/{shard}"', "urls.ocsp"),
        ("validity_days = 5479", "validity_days = 1000", "ca"),
        ('url = "sqlite:///ledger.sqlite3"', 'url = "mysql://x"', "ledger.url"),
    ],
)
def test_invalid_values_are_rejected(tmp_path: Path, old: str, new: str, key: str) -> None:
    text = _base_toml()
    assert old in text
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(_write(tmp_path, text.replace(old, new, 1)))


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "absent.toml")
    assert "no config file" in error.value.message
    assert error.value.hint is not None
    assert "ctstatus init" in error.value.hint


def test_corrupt_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, _base_toml()[:-40] + "[[[\n"))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(binary)


def test_inline_secret_is_refused_and_never_echoed(tmp_path: Path) -> None:
    text = _base_toml().replace(
        'passphrase = { file = "secrets/key-passphrase" }', 'passphrase = "hunter2-secret"'
    )
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, text))
    assert "never written in the config file" in error.value.message
    assert "hunter2" not in str(error.value)


def test_password_in_database_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="must not contain a password") as error:
        new_instance_config(ledger_url="postgresql+psycopg://ca:s3cret@db/ledger")
    assert "s3cret" not in str(error.value)


def test_plain_postgresql_url_selects_psycopg() -> None:
    config = new_instance_config(ledger_url="postgresql://ca@db/ledger")
    assert config.ledger.url == "postgresql+psycopg://ca@db/ledger"


def test_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTSTATUS_TEST_SECRET", "from-env")
    assert SecretSource(env="CTSTATUS_TEST_SECRET").resolve(tmp_path, "x").reveal() == "from-env"
    (tmp_path / "pw").write_text("from-file\n")
    assert SecretSource(file=Path("pw")).resolve(tmp_path, "x").reveal() == "from-file"
    monkeypatch.delenv("CTSTATUS_TEST_SECRET")
    with pytest.raises(ConfigError, match="CTSTATUS_TEST_SECRET, which is not set"):
        SecretSource(env="CTSTATUS_TEST_SECRET").resolve(tmp_path, "key passphrase")
    with pytest.raises(ConfigError, match="cannot read the key passphrase"):
        SecretSource(file=Path("absent")).resolve(tmp_path, "key passphrase")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        SecretSource(file=Path("empty")).resolve(tmp_path, "key passphrase")
    with pytest.raises(ValueError, match="exactly one"):
        SecretSource(env="A", file=Path("b"))


def test_secret_never_shows_its_value() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret} {[secret]}"


def test_documentation_covers_every_option() -> None:
    """docs/configuration.md names every key of the rendered config (and of the models)."""
    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    data = tomllib.loads(render_config(new_instance_config(pkcs11_token="t")))
    data.update(tomllib.loads(render_config(new_instance_config(ledger_password_env="P"))))

    def keys(table: dict[str, object], prefix: str) -> list[str]:
        out = []
        for key, value in table.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and key not in ("passphrase", "password", "pin"):
                out += keys(value, dotted + ".")
            else:
                out.append(dotted)
        return out

    for dotted in keys(data, ""):
        section, _, key = dotted.rpartition(".")
        assert f"`{key}`" in doc, f"{dotted} is not documented"
        assert f"[{section}]" in doc, f"[{section}] is not documented"


def test_parse_config_reports_missing_sections() -> None:
    with pytest.raises(ConfigError, match="missing key 'ca'"):
        parse_config({}, source="test")


def test_no_value_under_a_secret_looking_key_is_ever_echoed() -> None:
    from pydantic import BaseModel, ValidationError

    from ctstatus.config import describe_validation_error

    class Model(BaseModel):
        key_passphrase: int
        db_password_file: int
        common_name: int

    try:
        Model.model_validate(
            {"key_passphrase": "hunter2", "db_password_file": "swordfish", "common_name": "x"}
        )
    except ValidationError as exc:
        text = describe_validation_error(exc, "test.toml")
    assert "hunter2" not in text
    assert "swordfish" not in text
    assert "(got 'x')" in text
