"""Load the example warehouse's table `orders` into PostgreSQL, to try `source.warehouse`.

Usage::

    export WAREHOUSE_URI=postgresql://USER:PASSWORD@HOST:5432/DATABASE
    python examples/load_postgres.py [--duckdb examples/warehouse.duckdb]

Replaces the table `orders` in that database with the rows of the DuckDB file that
``examples/build_warehouse.py`` (or ``make demo``) wrote, column for column (the same
DDL: ``VARCHAR``, ``DECIMAL(12, 2)``, ``DATE``, ``INTEGER`` mean the same in Postgres).
Then ``sql/conversions_postgres.sql`` maps it, as ``sql/conversions.sql`` maps the DuckDB
file. Needs the ``postgres`` extra: ``pip install 'rokt-connector[postgres]'``. The URI is
read from the environment, never from the command line (which ``ps`` shows every user).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import duckdb
from build_warehouse import ORDERS_DDL


def load(uri: str, database: Path) -> int:
    """Replace `orders` in the Postgres database at `uri` with the DuckDB file's; the rows."""
    import adbc_driver_postgresql.dbapi as postgres

    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.sql("SELECT * FROM orders").to_arrow_table()
    with postgres.connect(uri) as con, con.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS orders")
        cursor.execute(ORDERS_DDL)
        cursor.adbc_ingest("orders", rows, mode="append")
        con.commit()
    return int(rows.num_rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--duckdb", type=Path, default=here / "warehouse.duckdb")
    args = parser.parse_args()
    uri = os.environ.get("WAREHOUSE_URI")
    if not uri:
        print("set WAREHOUSE_URI=postgresql://USER:PASSWORD@HOST:PORT/DATABASE", file=sys.stderr)
        return 2
    print(f"loaded {load(uri, args.duckdb)} rows into orders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
