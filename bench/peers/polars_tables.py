#!/usr/bin/env python3
"""Polars peer: group_daily, group_event_daily, active_groups and group_profiles from the
same job file groupetl runs (see common.py for the rules implemented).

    python polars_tables.py JOB.toml --out DIR [--threads N]

Writes DIR/<table>/date=YYYY-MM-DD/*.parquet (group_profiles unpartitioned), the layout
groupetl writes, and one PEER_REPORT line with phase times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("job")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    return ap.parse_args()


ARGS = parse_args()
# must be set before polars is imported
os.environ["POLARS_MAX_THREADS"] = str(ARGS.threads)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import polars as pl  # noqa: E402

IDS = pl.List(pl.String)


def clean_ids(e: pl.Expr) -> pl.Expr:
    """A list of id texts -> distinct non-empty ids."""
    return e.list.eval(pl.element().filter(pl.element().is_not_null() & (pl.element() != ""))).list.unique()


def epoch_us(t: pl.Expr) -> pl.Expr:
    """Epoch seconds, or milliseconds when above 1e11, as integer microseconds."""
    return (
        pl.when(t.abs() > 1e11).then(t * 1000).otherwise(t * 1_000_000).round(0).cast(pl.Int64)
    )


def source(job: common.Job) -> pl.LazyFrame:
    """(event, usr, t_us, iid, ing, k0..kn) with kI a List(String) of distinct ids."""
    keys = [k["key"] for k in job.keys]
    if job.event_type == "parquet":
        lf = pl.scan_parquet(job.event_files)
        schema = lf.collect_schema()
        cols = []
        for i, k in enumerate(keys):
            dt = schema.get(k)
            if dt is None:
                cols.append(pl.lit([], dtype=IDS).alias(f"k{i}"))
            elif isinstance(dt, pl.List):
                cols.append(clean_ids(pl.col(k).cast(IDS)).alias(f"k{i}"))
            else:
                cols.append(clean_ids(pl.concat_list(pl.col(k).cast(pl.String))).alias(f"k{i}"))
        return lf.select(
            pl.col("event"),
            pl.col("distinct_id").cast(pl.String).replace("", None).alias("usr"),
            epoch_us(pl.col("time").cast(pl.Float64)).alias("t_us"),
            pl.col("$insert_id").cast(pl.String).alias("iid"),
            (pl.col("mp_processing_time_ms").cast(pl.Int64) * 1000).alias("ing"),
            *cols,
        )
    # Mixpanel raw export. Polars has no union type: a group key read as String holds a
    # JSON string as its text and any other JSON value (list, number) as its JSON text, so
    # a value starting with "[" is a list (the bench never has a string id starting
    # with "[").
    props = {
        "time": pl.Float64,
        "distinct_id": pl.String,
        "$insert_id": pl.String,
        "mp_processing_time_ms": pl.Float64,
    }
    for k in keys:
        props[k] = pl.String
    lf = pl.scan_ndjson(job.event_files, schema={"event": pl.String, "properties": pl.Struct(props)})
    p = pl.col("properties")
    cols = []
    for i, k in enumerate(keys):
        v = p.struct.field(k)
        ids = pl.when(v.str.starts_with("[")).then(v.str.json_decode(IDS)).otherwise(pl.concat_list(v))
        cols.append(clean_ids(ids).alias(f"k{i}"))
    return lf.select(
        pl.col("event"),
        p.struct.field("distinct_id").replace("", None).alias("usr"),
        epoch_us(p.struct.field("time")).alias("t_us"),
        p.struct.field("$insert_id").alias("iid"),
        (p.struct.field("mp_processing_time_ms") * 1000).round(0).cast(pl.Int64).alias("ing"),
        *cols,
    )


def main():
    a = ARGS
    t_all = time.perf_counter()
    job = common.Job(a.job)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    prof = common.Background(common.fold_profiles, job.profile_files, job.keys)
    phases = {}
    nk = len(job.keys)
    kcols = [f"k{i}" for i in range(nk)]

    t = time.perf_counter()
    # dedup: the latest ingested copy wins (a missing ingest time is the oldest). Only the
    # rows whose key occurs more than once go through the group-by (~1% here): the same
    # result as grouping everything, about twice as fast and half the memory in Polars.
    key = ["event", "usr", "t_us", "iid"]
    src = source(job).with_columns(pl.col("ing").fill_null(-(2**63) + 1).alias("_ord"))
    dup = pl.struct(key).is_duplicated()
    kept = pl.concat(
        [
            src.filter(~dup).drop("_ord"),
            src.filter(dup).group_by(key).agg(pl.col([*kcols, "ing"]).get(pl.col("_ord").arg_max())),
        ],
        how="diagonal",
    ).collect(engine="streaming")
    phases["read + dedup"] = time.perf_counter() - t

    t = time.perf_counter()
    base = kept.lazy().filter(~pl.col("event").is_in(job.exclude))
    parts = []
    for i, k in enumerate(job.keys):
        lf = base.filter(pl.col(f"k{i}").list.len() > 0)
        if k["from_us"] is not None:
            clock = pl.col("t_us") if k["clock"] == "event" else pl.col("ing").fill_null(pl.col("t_us"))
            lf = lf.filter(clock >= k["from_us"])
        parts.append(
            lf.select(
                pl.from_epoch(pl.col("t_us"), time_unit="us").dt.date().alias("date"),
                pl.lit(k["key"]).alias("group_key"),
                pl.col(f"k{i}").alias("group_id"),
                pl.col("event"),
                pl.col("usr"),
            ).explode("group_id")
        )
    hits = pl.concat(parts).collect(engine="streaming").lazy()
    del kept, base
    phases["attribute"] = time.perf_counter() - t

    t = time.perf_counter()
    users = pl.col("usr").drop_nulls().n_unique().cast(pl.Int64).alias("users")
    gd, ged = pl.collect_all(
        [
            hits.group_by(["date", "group_key", "group_id"]).agg(pl.len().cast(pl.Int64).alias("events"), users),
            hits.group_by(["date", "group_key", "group_id", "event"]).agg(pl.len().cast(pl.Int64).alias("events"), users),
        ],
        engine=os.environ.get("PL_ENGINE", "streaming"),
    )
    del hits
    ag = active_groups(gd)
    phases["tables"] = time.perf_counter() - t

    t = time.perf_counter()
    for name, df in [("group_daily", gd), ("group_event_daily", ged), ("active_groups", ag)]:
        # Hive layout with the partition column in the path only, as groupetl writes it
        df.lazy().sink_parquet(
            pl.PartitionBy(os.path.join(a.out, name), key="date", include_key=False),
            compression="zstd",
            mkdir=True,
        )
    phases["write"] = time.perf_counter() - t

    common.finish("polars", pl.__version__, phases, prof, write_profiles, os.path.join(a.out, "group_profiles"), t_all)


def active_groups(gd: pl.DataFrame) -> pl.DataFrame:
    """dau/wau/mau per key and date, dense from the key's first to last active date: a
    group counts on [d, d + w - 1] after each active date d, cut at its next active date."""
    nx = (
        gd.lazy()
        .select("group_key", "group_id", "date")
        .sort(["group_key", "group_id", "date"])
        .with_columns(pl.col("date").shift(-1).over(["group_key", "group_id"]).alias("nxt"))
    )
    d = pl.col("date")

    def cut(w):
        return pl.min_horizontal(d + pl.duration(days=w), pl.col("nxt").fill_null(d + pl.duration(days=w)))

    deltas = pl.concat(
        [
            nx.select("group_key", d.alias("d"), pl.lit(1).alias("dd"), pl.lit(1).alias("dw"), pl.lit(1).alias("dm")),
            nx.select("group_key", (d + pl.duration(days=1)).alias("d"), pl.lit(-1).alias("dd"), pl.lit(0).alias("dw"), pl.lit(0).alias("dm")),
            nx.select("group_key", cut(7).alias("d"), pl.lit(0).alias("dd"), pl.lit(-1).alias("dw"), pl.lit(0).alias("dm")),
            nx.select("group_key", cut(30).alias("d"), pl.lit(0).alias("dd"), pl.lit(0).alias("dw"), pl.lit(-1).alias("dm")),
        ]
    ).group_by(["group_key", "d"]).agg(pl.col("dd").sum(), pl.col("dw").sum(), pl.col("dm").sum())
    grid = (
        gd.lazy()
        .group_by("group_key")
        .agg(pl.col("date").min().alias("f"), pl.col("date").max().alias("l"))
        .select("group_key", pl.date_ranges("f", "l", interval="1d").alias("date"))
        .explode("date")
    )
    return (
        grid.join(deltas, left_on=["group_key", "date"], right_on=["group_key", "d"], how="left")
        .sort(["group_key", "date"])
        .select(
            "date",
            "group_key",
            *[
                pl.col(c).fill_null(0).cum_sum().over("group_key").cast(pl.Int64).alias(n)
                for c, n in [("dd", "dau"), ("dw", "wau"), ("dm", "mau")]
            ],
        )
        .collect()
    )


def write_profiles(rows, dir_):
    os.makedirs(dir_, exist_ok=True)
    cols = list(zip(*rows)) if rows else [[]] * 6
    ts = pl.Datetime("us", "UTC")
    df = pl.DataFrame(
        {
            "group_key": pl.Series(cols[0], dtype=pl.String),
            "group_id": pl.Series(cols[1], dtype=pl.String),
            "name": pl.Series(cols[2], dtype=pl.String),
            "properties": pl.Series(cols[3], dtype=pl.String),
            "created_at": pl.Series(cols[4], dtype=pl.Int64).cast(ts),
            "updated_at": pl.Series(cols[5], dtype=pl.Int64).cast(ts),
        }
    )
    df.write_parquet(os.path.join(dir_, "part-0.parquet"), compression="zstd")


if __name__ == "__main__":
    main()
