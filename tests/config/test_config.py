"""Config loading: env expansion, relative paths, and errors that name the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from conftest import SECRET, base_config, write_config

from connector.config import Config, Transport, load_config
from connector.errors import ConfigError


def test_env_vars_paths_and_defaults(tmp_path: Path) -> None:
    config = base_config(
        tmp_path,
        destination={"api_key": "${MY_KEY}", "api_secret": "${MY_SECRET:-fallback}"},
        sync={"lookback": "36h", "max_event_age": "45d", "max_clock_skew": "0m"},
    )
    loaded = load_config(write_config(tmp_path, config), env={"MY_KEY": "k1"})
    assert loaded.destination.api_key.get_secret_value() == "k1"
    assert loaded.destination.api_secret is not None
    assert loaded.destination.api_secret.get_secret_value() == "fallback"
    assert loaded.source.query == tmp_path / "query.sql"
    assert loaded.source.database == tmp_path / "warehouse.duckdb"
    assert loaded.ledger.path == tmp_path / "ledger.duckdb"
    assert loaded.sync.lookback == timedelta(hours=36)
    assert loaded.sync.max_event_age == timedelta(days=45)
    assert loaded.sync.max_clock_skew == timedelta(0)  # no event time after now is sent
    assert load_config(write_config(tmp_path, base_config(tmp_path))).sync.max_event_age == (
        timedelta(days=30)
    )
    assert loaded.destination.transport == Transport.EVENTS_API
    assert loaded.destination.max_batches_per_second == 270
    assert loaded.mapping.hash == ("email", "firstname", "lastname", "mobile", "zip")


def test_missing_env_var_names_the_variable_and_key(tmp_path: Path) -> None:
    config = base_config(tmp_path, destination={"api_secret": "${ROKT_TEST_UNSET_VAR}"})
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config), env={})
    assert "ROKT_TEST_UNSET_VAR" in str(error.value)
    assert "destination.api_secret" in str(error.value)


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("destination", {"pods": "US1"}, "destination.pods: unknown key"),
        ("destination", {"pod": "XX9"}, "destination.pod"),
        ("destination", {"environment": "staging"}, "destination.environment"),
        ("destination", {"concurrency": 0}, "destination.concurrency"),
        ("destination", {"base_url": "http://example.com"}, "only for loopback"),
        ("destination", {"base_url": "https://h.example/v2"}, "no path"),
        ("mapping", {"hash": ["email", "city"]}, "cannot hash city"),
        ("mapping", {"unknown_columns": "keep"}, "mapping.unknown_columns"),
        ("sync", {"lookback": "a week"}, "sync.lookback"),
        ("sync", {"max_event_age": "0d"}, "sync.max_event_age: must be longer than 0s"),
        ("source", {"chunk_rows": -5}, "source.chunk_rows"),
        ("source", {"parquet": {"bad name": "x.parquet"}}, "plain SQL identifier"),
    ],
)
def test_bad_values_name_the_key_path(
    tmp_path: Path, section: str, values: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, base_config(tmp_path, **{section: values})))
    assert expected in str(error.value)


def test_unknown_top_level_key_and_missing_section(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["sorce"] = {}
    with pytest.raises(ConfigError, match="sorce: unknown key"):
        load_config(write_config(tmp_path, config))
    del config["sorce"], config["source"]
    with pytest.raises(ConfigError, match="source: Field required"):
        load_config(write_config(tmp_path, config))


def test_secret_never_in_error_messages(tmp_path: Path) -> None:
    bad = [
        base_config(tmp_path, destination={"api_secret": [SECRET]}),
        base_config(tmp_path, destination={"api_key": {"k": SECRET}}),
        base_config(tmp_path, destination={"transport": "nope", "api_secret": SECRET}),
    ]
    for config in bad:
        with pytest.raises(ConfigError) as error:
            load_config(write_config(tmp_path, config))
        assert SECRET not in str(error.value)
        assert SECRET not in repr(error.value)
    loaded = load_config(write_config(tmp_path, base_config(tmp_path)))
    assert SECRET not in repr(loaded)
    assert SECRET not in str(loaded.model_dump())


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("source: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path)
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_pixel_transport_needs_no_secret(tmp_path: Path) -> None:
    config = base_config(
        tmp_path,
        destination={"transport": "pixel", "base_url": None, "environment": "production"},
    )
    del config["destination"]["api_secret"]
    loaded = load_config(write_config(tmp_path, config))
    assert loaded.destination.root_url == "https://pixels.mparticle.com"
    config["destination"]["transport"] = "events_api"
    with pytest.raises(ConfigError, match="api_secret is required"):
        load_config(write_config(tmp_path, config))


def test_pod_picks_the_event_api_host(tmp_path: Path) -> None:
    config = base_config(
        tmp_path, destination={"base_url": None, "pod": "EU1", "environment": "production"}
    )
    loaded = load_config(write_config(tmp_path, config))
    assert loaded.destination.root_url == "https://s2s.eu1.mparticle.com"


def test_each_transport_asks_for_its_own_keys_and_rate(tmp_path: Path) -> None:
    def load(**destination: object) -> Config:
        config = base_config(tmp_path, destination=destination)
        for name in ("api_key", "api_secret", "max_batches_per_second"):
            if destination.get(name, "") is None:
                del config["destination"][name]
        return load_config(write_config(tmp_path, config))

    rudder = {"transport": "rudderstack_pixel", "api_key": None, "api_secret": None}
    with pytest.raises(ConfigError, match="write_key is required when transport is rudderstack"):
        load(**rudder)
    with pytest.raises(ConfigError, match="base_url is required when transport is rudderstack"):
        load(**rudder, write_key="wk", base_url=None, environment="production")
    loaded = load(**rudder, write_key="wk", max_requests_per_second=40)
    assert (loaded.destination.rate, loaded.destination.per_request) == (40, 1)
    assert loaded.destination.event == "Order Completed"
    assert load(**rudder, write_key="wk").destination.rate == 100
    with pytest.raises(ConfigError, match="api_key is required when transport is pixel"):
        load(transport="pixel", api_key=None)
    with pytest.raises(ConfigError, match="set max_requests_per_second instead"):
        load(transport="pixel", max_batches_per_second=50)
    with pytest.raises(ConfigError, match="max_requests_per_second is for the pixel"):
        load(max_requests_per_second=50)
    with pytest.raises(ConfigError) as hidden:
        load(**rudder, write_key="   ")
    assert "write_key" in str(hidden.value) and "must not be empty" in str(hidden.value)
