#!/usr/bin/env python3
"""DuckDB peer: group_daily, group_event_daily, active_groups and group_profiles from the
same job file groupetl runs (see common.py for the rules implemented).

    python duckdb_tables.py JOB.toml --out DIR [--threads N]

Writes DIR/<table>/date=YYYY-MM-DD/*.parquet (group_profiles unpartitioned), the layout
groupetl writes, and one PEER_REPORT line with phase times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def sql_list(items):
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


def ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


MACROS = """
-- one JSON scalar -> group id text (SPEC §4): non-empty string as is, number as decimal
-- text, anything else none
CREATE OR REPLACE TEMP MACRO gid_json(j) AS CASE json_type(j)
    WHEN 'VARCHAR' THEN nullif(j ->> '$', '')
    WHEN 'BIGINT' THEN j ->> '$'
    WHEN 'UBIGINT' THEN j ->> '$'
    WHEN 'DOUBLE' THEN CASE WHEN CAST(j AS DOUBLE) = trunc(CAST(j AS DOUBLE)) AND abs(CAST(j AS DOUBLE)) < 9.2e18
                            THEN CAST(CAST(CAST(j AS DOUBLE) AS BIGINT) AS VARCHAR)
                            ELSE CAST(CAST(j AS DOUBLE) AS VARCHAR) END
    ELSE NULL END;
-- a JSON value (scalar or list) -> distinct ids
CREATE OR REPLACE TEMP MACRO gids_json(j) AS CASE
    WHEN j IS NULL THEN CAST([] AS VARCHAR[])
    WHEN json_type(j) = 'ARRAY' THEN
        list_distinct(list_filter(list_transform(json_extract(j, '$[*]'), lambda x: gid_json(x)), lambda x: x IS NOT NULL))
    ELSE list_filter([gid_json(j)], lambda x: x IS NOT NULL) END;
-- a typed Parquet list of strings -> distinct non-empty ids
CREATE OR REPLACE TEMP MACRO gids_list(l) AS
    coalesce(list_distinct(list_filter(l, lambda x: x IS NOT NULL AND x <> '')), CAST([] AS VARCHAR[]));
CREATE OR REPLACE TEMP MACRO gids_text(s) AS
    CASE WHEN s IS NULL OR s = '' THEN CAST([] AS VARCHAR[]) ELSE [s] END;
-- epoch seconds, or milliseconds when above 1e11 -> microseconds
CREATE OR REPLACE TEMP MACRO epoch_us(t) AS
    CAST(round(CASE WHEN abs(t) > 1e11 THEN t * 1000 ELSE t * 1000000 END) AS BIGINT);
"""


def source_sql(con, job: common.Job) -> str:
    """A SELECT of (event, user, t_us, iid, ingest_us, <one VARCHAR[] column per key>)."""
    files = sql_list(job.event_files)
    keys = [k["key"] for k in job.keys]
    if job.event_type == "parquet":
        schema = {
            r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_list(job.event_files[:1])})").fetchall()
        }
        cols = []
        for i, k in enumerate(keys):
            t = schema.get(k)
            if t is None:
                cols.append(f"CAST([] AS VARCHAR[]) AS k{i}")
            elif t.endswith("[]"):
                cols.append(f"gids_list(CAST({ident(k)} AS VARCHAR[])) AS k{i}")
            else:
                cols.append(f"gids_text(CAST({ident(k)} AS VARCHAR)) AS k{i}")
        return f"""
            SELECT event, nullif(CAST(distinct_id AS VARCHAR), '') AS usr, epoch_us(time) AS t_us,
                   CAST("$insert_id" AS VARCHAR) AS iid, CAST(mp_processing_time_ms AS BIGINT) * 1000 AS ingest_us,
                   {", ".join(cols)}
            FROM read_parquet({files})"""
    # Mixpanel raw export: {"event", "properties": {...}}; group keys read as JSON so that a
    # string, a number and a list are all seen for what they are.
    fields = [
        '"time" DOUBLE',
        "distinct_id VARCHAR",
        '"$insert_id" VARCHAR',
        "mp_processing_time_ms DOUBLE",
    ] + [f"{ident(k)} JSON" for k in keys]
    struct = "STRUCT(" + ", ".join(fields) + ")"
    cols = [f"gids_json(properties.{ident(k)}) AS k{i}" for i, k in enumerate(keys)]
    return f"""
        SELECT event, nullif(properties.distinct_id, '') AS usr, epoch_us(properties."time") AS t_us,
               properties."$insert_id" AS iid, CAST(round(properties.mp_processing_time_ms * 1000) AS BIGINT) AS ingest_us,
               {", ".join(cols)}
        FROM read_json({files}, format = 'newline_delimited', compression = 'auto',
                       columns = {{'event': 'VARCHAR', 'properties': '{struct}'}})"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("job")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit (default: DuckDB's own)")
    a = ap.parse_args()
    t_all = time.perf_counter()
    job = common.Job(a.job)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)

    # profiles fold in the background while DuckDB runs (DuckDB releases the GIL)
    prof = common.Background(common.fold_profiles, job.profile_files, job.keys)

    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    if a.memory_limit:
        con.execute(f"SET memory_limit = '{a.memory_limit}'")
    con.execute(MACROS)
    phases = {}

    nk = len(job.keys)
    kcols = ", ".join(f"k{i}" for i in range(nk))
    t = time.perf_counter()
    # dedup: one row per (event, user, time, insert id); the latest ingested copy's group
    # ids win (a missing ingest time is the oldest)
    con.execute(
        f"""
        CREATE TEMP TABLE kept AS
        SELECT event, usr, t_us,
               arg_max({{{", ".join(f"'k{i}': k{i}" for i in range(nk))}, 'ing': ingest_us}},
                       coalesce(ingest_us, -9223372036854775807)) AS w
        FROM ({source_sql(con, job)})
        GROUP BY event, usr, t_us, iid
        """
    )
    phases["read + dedup"] = time.perf_counter() - t

    t = time.perf_counter()
    excl = sql_list(job.exclude) if job.exclude else "CAST([] AS VARCHAR[])"
    parts = []
    for i, k in enumerate(job.keys):
        clock = "t_us" if k["clock"] == "event" else "coalesce(w.ing, t_us)"
        cond = f" AND {clock} >= {k['from_us']}" if k["from_us"] is not None else ""
        parts.append(
            f"""SELECT CAST(make_timestamp(t_us) AS DATE) AS date, '{k['key']}' AS group_key,
                       unnest(w.k{i}) AS group_id, event, usr
                FROM kept WHERE NOT list_contains({excl}, event) AND len(w.k{i}) > 0{cond}"""
        )
    con.execute("CREATE TEMP TABLE hits AS " + "\nUNION ALL\n".join(parts))
    con.execute("DROP TABLE kept")
    phases["attribute"] = time.perf_counter() - t

    t = time.perf_counter()
    con.execute(
        """CREATE TEMP TABLE gd AS
           SELECT date, group_key, group_id, count(*) AS events, count(DISTINCT usr) AS users
           FROM hits GROUP BY ALL"""
    )
    con.execute(
        """CREATE TEMP TABLE ged AS
           SELECT date, group_key, group_id, event, count(*) AS events, count(DISTINCT usr) AS users
           FROM hits GROUP BY ALL"""
    )
    con.execute("DROP TABLE hits")
    # active_groups: a group counts towards wau/mau on the dates [d, d + w - 1] after each
    # active date d, cut at its next active date so that it counts once; dense date grid.
    con.execute(
        """CREATE TEMP TABLE ag AS
        WITH nx AS (
            SELECT group_key, date, lead(date) OVER (PARTITION BY group_key, group_id ORDER BY date) AS nxt
            FROM gd),
        deltas AS (
            SELECT group_key, date AS d, 1 AS dd, 1 AS dw, 1 AS dm FROM nx
            UNION ALL SELECT group_key, date + 1, -1, 0, 0 FROM nx
            UNION ALL SELECT group_key, least(date + 7, coalesce(nxt, date + 7)), 0, -1, 0 FROM nx
            UNION ALL SELECT group_key, least(date + 30, coalesce(nxt, date + 30)), 0, 0, -1 FROM nx),
        agg AS (SELECT group_key, d, sum(dd) AS dd, sum(dw) AS dw, sum(dm) AS dm FROM deltas GROUP BY ALL),
        bounds AS (SELECT group_key, min(date) AS f, max(date) AS l FROM gd GROUP BY 1),
        grid AS (SELECT group_key, CAST(unnest(generate_series(f, l, INTERVAL 1 DAY)) AS DATE) AS date FROM bounds)
        SELECT g.date, g.group_key,
               CAST(sum(coalesce(a.dd, 0)) OVER w AS BIGINT) AS dau,
               CAST(sum(coalesce(a.dw, 0)) OVER w AS BIGINT) AS wau,
               CAST(sum(coalesce(a.dm, 0)) OVER w AS BIGINT) AS mau
        FROM grid g LEFT JOIN agg a ON a.group_key = g.group_key AND a.d = g.date
        WINDOW w AS (PARTITION BY g.group_key ORDER BY g.date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"""
    )
    phases["tables"] = time.perf_counter() - t

    t = time.perf_counter()
    for name, tab in [("group_daily", "gd"), ("group_event_daily", "ged"), ("active_groups", "ag")]:
        path = os.path.join(a.out, name).replace("'", "''")
        con.execute(
            f"COPY {tab} TO '{path}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date), OVERWRITE_OR_IGNORE)"
        )
    phases["write"] = time.perf_counter() - t

    common.finish("duckdb", duckdb.__version__, phases, prof, write_profiles, os.path.join(a.out, "group_profiles"), t_all)


def write_profiles(rows, dir_):
    os.makedirs(dir_, exist_ok=True)
    cols = list(zip(*rows)) if rows else [[]] * 6
    ts = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "group_key": pa.array(cols[0], pa.string()),
            "group_id": pa.array(cols[1], pa.string()),
            "name": pa.array(cols[2], pa.string()),
            "properties": pa.array(cols[3], pa.string()),
            "created_at": pa.array(cols[4], pa.int64()).cast(ts),
            "updated_at": pa.array(cols[5], pa.int64()).cast(ts),
        }
    )
    pq.write_table(table, os.path.join(dir_, "part-0.parquet"), compression="zstd")


if __name__ == "__main__":
    main()
