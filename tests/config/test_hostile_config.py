"""Hostile config files (issue 4.4): any bytes, any YAML, any value at any key, and
`${VAR}` edge cases load as a config or fail with one `ConfigError` that names the
key, is short, and never shows a secret or a value read from the environment;
through the CLI, a sample of them exits 2 without a traceback."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET, base_config, cli, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from connector.config import Config, load_config
from connector.errors import ConfigError

ENV_SECRET = "env-Secret-Value-5b1d"  # read from the environment: never echoed
ENV = {"ROKT_TEST_SECRET": ENV_SECRET, "ROKT_TEST_EMPTY": ""}
MAX_MESSAGE = 3000
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _keys(model: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if name != "path"]


SECTIONS: dict[str, list[str]] = {}
for _section, _field in Config.model_fields.items():
    if isinstance(_field.annotation, type) and issubclass(_field.annotation, BaseModel):
        SECTIONS[_section] = _keys(_field.annotation)
KEY_PATHS = [(section, key) for section, keys in SECTIONS.items() for key in keys]


@contextmanager
def config_file(content: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(content)
        yield path


def load(content: bytes) -> Config | ConfigError:
    """The config, or the ConfigError (any other exception fails the test)."""
    with config_file(content) as path:
        try:
            return load_config(path, env=ENV)
        except ConfigError as error:
            message = str(error)
            assert len(message) < MAX_MESSAGE, message[:500]
            assert SECRET not in message and ENV_SECRET not in message, message
            return error


# ---------------------------------------------------------------------- strategies

SPECIAL = st.sampled_from(
    [
        "${ROKT_TEST_SECRET}",
        "x${ROKT_TEST_SECRET}y",
        "${ROKT_TEST_EMPTY}",
        "${ROKT_TEST_UNSET}",
        "${ROKT_TEST_UNSET:-fallback}",
        "${ROKT_TEST_UNSET:-}",
        "${ROKT_TEST_UNSET:-${ROKT_TEST_SECRET}}",
        "${}",
        "${1BAD}",
        "$${ROKT_TEST_SECRET}",
        "'; DROP TABLE orders; --",
        "http://example.com",
        "https://[::1",
        "https://127.0.0.1:99999",
        "a\x00b",
        "lone \ud800 surrogate",
        "2026-13-45",
        "999999999999999d",
        "7d",
        "0s",
        "US1",
        "events_api",
        "",
    ]
)
huge = st.builds(
    lambda c, n: c * n, st.sampled_from(["x", "é", "😀", "'", "/"]), st.integers(1, 50_000)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**40), 10**40),
    st.floats(),  # nan and infinities included
    st.text(),
    huge,
    SPECIAL,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | SPECIAL, inner, max_size=3)
    ),
    max_leaves=6,
)
unknown_keys = st.text(st.characters(codec="utf-8", exclude_characters="\ud800"), max_size=12)


def _dump(config: dict[str, Any], ascii_only: bool) -> bytes:
    return yaml.safe_dump(config, allow_unicode=not ascii_only, sort_keys=False).encode(
        "utf-8", "surrogatepass"
    )


# ---------------------------------------------------------------------- properties


@FUZZ
@given(content=st.binary() | st.text().map(str.encode))
def test_any_bytes_are_a_config_error(content: bytes) -> None:
    assert isinstance(load(content), ConfigError)


@FUZZ
@given(
    where=st.sampled_from(KEY_PATHS),
    value=values,
    ascii_only=st.booleans(),
)
def test_any_value_at_any_key_loads_or_names_the_key(
    where: tuple[str, str], value: Any, ascii_only: bool
) -> None:
    section, key = where
    config = base_config(Path("/tmp/unused"))
    config.setdefault(section, {})[key] = value
    outcome = load(_dump(config, ascii_only))
    if isinstance(outcome, ConfigError):
        message = str(outcome)
        assert section in message and key in message, message


@FUZZ
@given(
    section=st.sampled_from([*SECTIONS, None]),
    key=unknown_keys.filter(lambda k: k not in {k for keys in SECTIONS.values() for k in keys}),
    value=values,
)
def test_unknown_keys_are_named(section: str | None, key: str, value: Any) -> None:
    config = base_config(Path("/tmp/unused"))
    if key in config or (section is None and key in SECTIONS):
        return
    (config.setdefault(section, {}) if section else config)[key] = value
    outcome = load(_dump(config, ascii_only=True))
    assert isinstance(outcome, ConfigError)
    where = f"{section}.{key}" if section else key  # a bad value is found before the key
    assert "unknown key" in str(outcome) or where[:40] in str(outcome), str(outcome)


@FUZZ
@given(section=st.sampled_from(list(SECTIONS)), value=values)
def test_a_whole_section_replaced_by_anything_names_the_section(section: str, value: Any) -> None:
    config = base_config(Path("/tmp/unused"))
    config[section] = value
    outcome = load(_dump(config, ascii_only=True))
    if isinstance(outcome, ConfigError):
        assert section in str(outcome), str(outcome)


@FUZZ
@given(
    name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
    set_it=st.booleans(),
    env_value=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
    default=st.none() | st.text(st.characters(codec="utf-8", exclude_characters="}"), max_size=8),
)
def test_env_references_expand_or_name_the_variable(
    name: str, set_it: bool, env_value: str, default: str | None
) -> None:
    """`${NAME}` / `${NAME:-default}` in a free text key (mapping.conversiontype) and in
    a key whose value is then invalid (destination.pod): expanded as documented, and
    the value read from the environment never appears in an error."""
    reference = f"${{{name}}}" if default is None else f"${{{name}:-{default}}}"
    env = dict(ENV)
    env.pop(name, None)
    if set_it:
        env[name] = f"{ENV_SECRET}{env_value}"
    nested = default is not None and "${" in default
    config = base_config(Path("/tmp/unused"), mapping={"conversiontype": f"<{reference}>"})
    with config_file(_dump(config, ascii_only=True)) as path:
        try:
            loaded = load_config(path, env=env)
        except ConfigError as error:
            message = str(error)
            assert "mapping.conversiontype" in message and ENV_SECRET not in message, message
            assert nested or (not set_it and default is None), message
        else:
            assert not nested and (set_it or default is not None)
            expected = env[name] if set_it else default
            assert loaded.mapping.conversiontype == f"<{expected}>"
    config = base_config(Path("/tmp/unused"), destination={"pod": reference + "X"})
    with config_file(_dump(config, ascii_only=True)) as path, pytest.raises(ConfigError) as error:
        load_config(path, env=env)
    assert "destination.pod" in str(error.value) and ENV_SECRET not in str(error.value)


# ----------------------------------------------------------- examples, one per finding


BASE = b"""source: {database: w.duckdb, query: q.sql}
destination: {base_url: "http://127.0.0.1:9", api_key: k, api_secret: s}
"""
BOMB = b"".join(
    b"%c: &%c [%s]\n" % (ord(a), ord(a), b",".join([b"*" + bytes([ord(a) - 1])] * 9))
    for a in "bcdefgh"
)
FINDINGS = {
    "not_utf8": (b"\xff\xfe" + BASE, "not UTF-8 text (byte 0)"),
    "bad_yaml_date": (BASE + b"sync: {lookback: 2001-13-45}\n", "not valid YAML"),
    "deep_nesting": (b"source: " + b"[" * 1200 + b"]" * 1200 + b"\n", "nested too deeply"),
    "alias_bomb": (b'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + BOMB + BASE, "too large"),
    "duplicate_key": (BASE + b"ledger: {path: a}\nledger: {path: b}\n", "'ledger' appears twice"),
    "lookback_overflow": (BASE + b"sync: {lookback: 99999999999d}\n", "sync.lookback: must be"),
    "nul_in_path": (BASE.replace(b"q.sql", b'"q\\0.sql"'), "source.query: must not contain"),
    "long_path": (BASE.replace(b"q.sql", b"q" * 5000), "source.query: is too long"),
    "bad_port": (BASE.replace(b":9", b":99999"), "destination.base_url: is not a valid URL"),
    "nested_default": (
        BASE.replace(b"api_key: k", b"api_key: '${NOPE:-${ALSO}}'"),
        "destination.api_key: a ${...} inside a default",
    ),
    "view_name_newline": (
        BASE.replace(b"query: q.sql", b'query: q.sql, parquet: {"orders\\n": x.parquet}'),
        "must be a plain SQL identifier",
    ),
    "huge_value": (
        BASE + b"mapping: {unknown_columns: '" + b"y" * 1_000_000 + b"'}\n",
        "mapping.unknown_columns: Input should be",
    ),
    "huge_hash_entry": (
        BASE + b"mapping: {hash: ['" + b"0" * 5000 + b"']}\n",
        "mapping.hash: cannot hash 00000",
    ),
    "many_unknown_keys": (
        BASE + b"mapping: {" + b",".join(b"k%d: 1" % i for i in range(5000)) + b"}\n",
        "and 4980 more",
    ),
}


@pytest.mark.parametrize(("content", "expected"), FINDINGS.values(), ids=FINDINGS.keys())
def test_hostile_files_fail_with_a_short_clear_message(content: bytes, expected: str) -> None:
    outcome = load(content)
    assert isinstance(outcome, ConfigError)
    assert expected in str(outcome), str(outcome)


CLI_SAMPLE = ["not_utf8", "alias_bomb", "nul_in_path"]


@pytest.mark.e2e
@pytest.mark.parametrize("finding", CLI_SAMPLE)
def test_the_cli_exits_2_without_a_traceback(tmp_path: Path, finding: str) -> None:
    content, expected = FINDINGS[finding]
    path = tmp_path / "config.yaml"
    path.write_bytes(content.replace(b"api_secret: s", b"api_secret: " + SECRET.encode()))
    command = "sync" if finding in ("alias_bomb", "nul_in_path") else "validate"
    result = cli(command, "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert expected in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert SECRET not in result.stderr and len(result.stderr) < MAX_MESSAGE


@pytest.mark.e2e
def test_a_secret_from_the_environment_is_not_echoed_by_the_cli(tmp_path: Path) -> None:
    config = base_config(tmp_path, destination={"pod": "${ROKT_TEST_SECRET}"})
    result = cli("validate", "--config", str(write_config(tmp_path, config)), env=ENV)
    assert result.returncode == 2 and "destination.pod" in result.stderr
    assert ENV_SECRET not in result.stderr + result.stdout
