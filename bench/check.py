#!/usr/bin/env python3
"""Compares groupetl's output with a peer's, table by table: row counts and full
contents (multiset difference both ways), for group_daily, group_event_daily,
active_groups and group_profiles.

    python check.py REFERENCE_DIR OTHER_DIR [OTHER_DIR ...]

Exit status 1 (and a loud MISMATCH line) when anything differs.
"""

from __future__ import annotations

import os
import sys

import duckdb

TABLES = {
    "group_daily": ("CAST(date AS DATE) AS date, group_key, group_id, CAST(events AS BIGINT) AS events, "
                    "CAST(users AS BIGINT) AS users", True),
    "group_event_daily": ("CAST(date AS DATE) AS date, group_key, group_id, event, CAST(events AS BIGINT) AS events, "
                          "CAST(users AS BIGINT) AS users", True),
    "active_groups": ("CAST(date AS DATE) AS date, group_key, CAST(dau AS BIGINT) AS dau, "
                      "CAST(wau AS BIGINT) AS wau, CAST(mau AS BIGINT) AS mau", True),
    "group_profiles": ("group_key, group_id, name, properties, epoch_us(created_at) AS created_at, "
                       "epoch_us(updated_at) AS updated_at", False),
}


def relation(root: str, table: str) -> str:
    cols, partitioned = TABLES[table]
    d = os.path.join(root, table).replace("'", "''")
    if partitioned:
        src = f"read_parquet('{d}/date=*/*.parquet', hive_partitioning = true)"
    else:
        src = f"read_parquet('{d}/*.parquet')"
    return f"(SELECT {cols} FROM {src})"


def compare(con, ref: str, other: str) -> list[str]:
    problems = []
    for table in TABLES:
        try:
            a = relation(ref, table)
            b = relation(other, table)
            na = con.execute(f"SELECT count(*) FROM {a}").fetchone()[0]
            nb = con.execute(f"SELECT count(*) FROM {b}").fetchone()[0]
            only_a = con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()[0]
            only_b = con.execute(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchone()[0]
        except duckdb.Error as e:
            problems.append(f"{table}: cannot compare: {e}".splitlines()[0])
            continue
        status = "ok" if na == nb and only_a == 0 and only_b == 0 else "MISMATCH"
        line = f"  {table:<18} rows {na:>10} vs {nb:>10}   only in first {only_a:>8}   only in second {only_b:>8}   {status}"
        print(line)
        if status != "ok":
            problems.append(line.strip())
            sample = con.execute(f"SELECT * FROM ({a} EXCEPT ALL {b}) LIMIT 3").fetchall()
            sample_b = con.execute(f"SELECT * FROM ({b} EXCEPT ALL {a}) LIMIT 3").fetchall()
            print(f"    e.g. only in {ref}: {sample}")
            print(f"    e.g. only in {other}: {sample_b}")
    return problems


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ref, others = sys.argv[1], sys.argv[2:]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    failed = False
    for other in others:
        print(f"check: {ref}  vs  {other}")
        problems = compare(con, ref, other)
        if problems:
            failed = True
            print("!" * 78)
            print(f"!!! MISMATCH between {ref} and {other}:")
            for p in problems:
                print(f"!!!   {p}")
            print("!" * 78)
        else:
            print("  all four tables identical")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
