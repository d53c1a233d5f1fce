"""Where analyses run: DuckDB (embedded) or Apache Spark, over the same Parquet files, from the same SQL.

Every analysis is written once, in DuckDB's SQL dialect; the Spark engine transpiles it with sqlglot. A query
names its inputs as tables (a kind of imported data: phone, taxi, boardings); each engine binds those names to the
kind's Parquet folder. Results come back as Arrow tables."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import sqlglot

from smartcity.analytics.settings import AnalyticsSettings, data_dir
from smartcity.core.errors import InvalidInput

KINDS = ("phone", "taxi", "boardings")


class Engine(Protocol):
    name: str

    def query(self, sql: str, tables: Mapping[str, Path]) -> pa.Table:
        """Run `sql` (DuckDB's dialect) with each name of `tables` bound to that folder's Parquet files."""
        ...


def tables(settings, kinds: Iterable[str] = KINDS) -> dict[str, Path]:
    """The folders of the kinds that have data."""
    root = data_dir(settings, settings.of(AnalyticsSettings))
    return {k: root / k for k in kinds if any((root / k).glob("day=*/*.parquet"))}


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def query(self, sql: str, tables: Mapping[str, Path]) -> pa.Table:
        import duckdb

        with duckdb.connect() as con:
            if self.threads:
                con.execute(f"SET threads = {int(self.threads)}")
            for name, folder in tables.items():
                # The day is in the files too (as time); the folder's day=… is for pruning by readers that want it.
                con.execute(
                    f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{_quoted(folder)}/day=*/*.parquet', "
                    "hive_partitioning = false, union_by_name = true)"
                )
            return con.sql(sql).to_arrow_table()


_spark_lock = threading.Lock()
_spark = None


def spark_session(master: str = "local[2]"):
    """The process's one SparkSession (starting Spark takes seconds: once per process)."""
    global _spark
    with _spark_lock:
        if _spark is None:
            from pyspark.sql import SparkSession

            _spark = (
                SparkSession.builder.master(master)
                .appName("smartcity-analytics")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.driver.memory", "1g")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .getOrCreate()
            )
            _spark.sparkContext.setLogLevel("ERROR")
        return _spark


class SparkEngine:
    name = "spark"

    def __init__(self, master: str = "local[2]") -> None:
        self.master = master

    @staticmethod
    def transpile(sql: str) -> str:
        return sqlglot.transpile(sql, read="duckdb", write="spark")[0]

    def query(self, sql: str, tables: Mapping[str, Path]) -> pa.Table:
        spark = spark_session(self.master)
        for name, folder in tables.items():
            files = sorted(str(p) for p in folder.glob("day=*/*.parquet"))
            spark.read.option("mergeSchema", "true").parquet(*files).createOrReplaceTempView(name)
        return spark.sql(self.transpile(sql)).toArrow()


def engine_for(settings) -> Engine:
    """The configured engine."""
    analytics = settings.of(AnalyticsSettings)
    if analytics.engine == "duckdb":
        return DuckDBEngine()
    if analytics.engine == "spark":
        return SparkEngine(analytics.spark_master)
    raise InvalidInput(f"unknown analytics engine {analytics.engine!r}: duckdb or spark")
