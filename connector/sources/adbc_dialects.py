"""What the warehouse source knows of each ADBC driver (`Dialect`): its package and extra,
how it writes a parameter, its session setup and its short option names."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Dialect:
    """What the connector needs to know of one ADBC driver."""

    package: str  # its Python package (`adbc_driver_postgresql`)
    extra: str  # the extra of rokt-connector that installs it
    style: str  # how a parameter is written: `$1` (numbered), `?` (in order), `@` (named)
    text: str  # the SQL type a cast to text names
    setup: tuple[str, ...] = ()  # run once per connection, before the query
    names: dict[str, str] = field(default_factory=dict)  # short option name -> driver's key
    statement: dict[str, str] = field(default_factory=dict)  # the query statement's options
    # stream through a server-side cursor: the Postgres driver holds a result whole when
    # parameters are bound; FETCH reads it `chunk_rows` at a time
    cursor: bool = False


_SF, _BQ = "adbc.snowflake.sql.", "adbc.bigquery.sql."
# fmt: off
DIALECTS = {
    "postgresql": Dialect("adbc_driver_postgresql", "postgres", "$1", "text", cursor=True, setup=(
        "SET TIME ZONE 'UTC'", "SET default_transaction_read_only = on",
        "SET application_name = 'rokt-connector'")),
    "snowflake": Dialect("adbc_driver_snowflake", "snowflake", "?", "VARCHAR",
        setup=("ALTER SESSION SET TIMEZONE = 'UTC'",), names={
            "account": f"{_SF}account", "database": f"{_SF}db", "schema": f"{_SF}schema",
            "warehouse": f"{_SF}warehouse", "role": f"{_SF}role"}),
    "bigquery": Dialect("adbc_driver_bigquery", "bigquery", "@", "STRING", names={
            "project": f"{_BQ}project_id", "dataset": f"{_BQ}dataset_id",
            "location": f"{_BQ}location"},
        statement={f"{_BQ}query.parameter_mode": f"{_BQ}query.parameter_mode_named"}),
    "flightsql": Dialect("adbc_driver_flightsql", "flightsql", "?", "VARCHAR"),
    "sqlite": Dialect("adbc_driver_sqlite", "sqlite", "?", "TEXT"),
}
# fmt: on
