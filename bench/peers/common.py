"""Shared pieces of the DuckDB and Polars peers: reading the groupetl job file, the
profile-operation fold (plain Python, the same code for both peers), and the timing report.

The peers implement the rules of SPEC §4-§6 that the bench workload exercises:

* Mixpanel raw-export events, `properties.<field>` (the bench files never use the
  top-level fallback, so the peers do not implement it);
* `time` in epoch seconds, or milliseconds when above 1e11;
* dedup on (event, distinct_id, time, $insert_id), the copy with the latest
  `mp_processing_time_ms` wins (a missing ingest time is the oldest). Ties on the ingest
  time are broken arbitrarily by the peers (groupetl: the later copy in input order); the
  bench data has no such ties;
* group ids: a non-empty string as it is, a number as its decimal text, a list one id
  per distinct element; empty strings, nulls, objects and booleans give none;
* `exclude_events`, each key's `effective_from` on its clock (event or ingest);
* dates in UTC (the bench job's timezone; the peers refuse any other);
* users = distinct non-empty distinct_id.

The group-profile fold ($set, $set_once, $unset, $union, $remove, $delete, in arrival
order) is inherently sequential; the peers run it in plain Python in a background thread
while their engine computes the event tables (both engines release the GIL while they
run), and report its time separately.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import math
import os
import sys
import threading
import time
import tomllib

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class Job:
    def __init__(self, path: str):
        with open(path, "rb") as f:
            raw = tomllib.load(f)
        base = os.path.dirname(os.path.abspath(path))
        self.name = raw["name"]
        tz = raw.get("timezone", "UTC")
        if tz != "UTC":
            sys.exit(f"peer: only timezone = \"UTC\" is implemented, job has {tz!r}")
        self.exclude = list(raw.get("exclude_events", ["$groupidentify", "$delete_group_property"]))
        ev = raw["events"]
        if ev.get("format") != "mixpanel":
            sys.exit("peer: only events.format = \"mixpanel\" is implemented")
        self.event_files = sorted({p for g in ev["paths"] for p in glob.glob(_abs(base, g))})
        if not self.event_files:
            sys.exit(f"peer: no event files match {ev['paths']}")
        first = self.event_files[0]
        if first.endswith(".parquet"):
            self.event_type = "parquet"
        elif first.endswith((".ndjson.gz", ".jsonl.gz", ".json.gz", ".ndjson", ".jsonl")):
            self.event_type = "ndjson"
        else:
            sys.exit(f"peer: unsupported event file type: {first}")
        prof = raw.get("profiles")
        self.profile_files = []
        if prof:
            if prof.get("format") != "mixpanel" or prof.get("order", "arrival") != "arrival":
                sys.exit("peer: only mixpanel profiles in arrival order are implemented")
            self.profile_files = sorted({p for g in prof["paths"] for p in glob.glob(_abs(base, g))})
        self.keys = []
        for k in raw["group_keys"]:
            frm = k.get("effective_from")
            self.keys.append(
                {
                    "key": k["key"],
                    "from_us": parse_instant_us(frm) if frm else None,
                    "clock": k.get("clock", "event"),
                    "name_property": k.get("name_property"),
                }
            )


def _abs(base: str, p: str) -> str:
    return p if os.path.isabs(p) else os.path.join(base, p)


def parse_instant_us(s: str) -> int:
    """A bare date is 00:00 UTC; otherwise RFC 3339."""
    s = s.strip()
    if len(s) == 10:
        d = dt.datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    else:
        d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (d - EPOCH) // dt.timedelta(microseconds=1)


# ---------------------------------------------------------------------------------------
# profile fold (SPEC §5), arrival order

_METADATA = {
    "$token", "$group_key", "$group_id", "$time", "$ignore_time", "$ignore_alias", "$ip",
    "$mp_metadata", "$distinct_id", "$lib", "$lib_version", "$insert_id",
}
_OPS = {"$set", "$set_once", "$unset", "$union", "$remove", "$delete"}


def _id_text(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        return v or None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 9.2e18 else repr(v)
    return None


def _time_us(v):
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
        if isinstance(v, int):
            return v * 1000 if abs(v) > 1e11 else v * 1_000_000
        x = f * 1e3 if abs(f) > 1e11 else f * 1e6
        return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))
    return None


def _jeq(a, b):
    """JSON equality as serde_json has it: 1 != "1", 1 != true, 1 != 1.0."""
    return type(a) is type(b) and a == b


def fold_profiles(files, keys):
    """Returns (rows, ops_read, bad): rows = (group_key, group_id, name, properties_json,
    created_at_us, updated_at_us) sorted by (group_key, group_id), live groups of the
    job's keys only."""
    groups = {}
    ops = 0
    bad = 0
    loads = json.loads
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    rec = loads(line)
                except ValueError:
                    bad += 1
                    continue
                op = None
                for k in rec:
                    if k[:1] == "$" and k not in _METADATA:
                        if k not in _OPS or op is not None:
                            op = "bad"
                            break
                        op = k
                gk = rec.get("$group_key")
                gid = _id_text(rec.get("$group_id"))
                if op is None or op == "bad" or not isinstance(gk, str) or not gk or gid is None:
                    bad += 1
                    continue
                ops += 1
                t = _time_us(rec.get("$time"))
                payload = rec[op]
                gkey = (gk, gid)
                if op == "$delete":
                    groups.pop(gkey, None)
                    continue
                st = groups.get(gkey)
                if st is None:
                    if op in ("$unset", "$remove"):
                        continue
                    st = [{}, t, t]
                    groups[gkey] = st
                st[2] = t
                props = st[0]
                if op == "$set":
                    props.update(payload)
                elif op == "$set_once":
                    for k, v in payload.items():
                        if k not in props:
                            props[k] = v
                elif op == "$unset":
                    for k in payload:
                        props.pop(k, None)
                elif op == "$union":
                    for k, incoming in payload.items():
                        cur = props.get(k, _MISSING)
                        if cur is _MISSING:
                            lst = []
                            for x in incoming:
                                if not any(_jeq(x, y) for y in lst):
                                    lst.append(x)
                            props[k] = lst
                        elif isinstance(cur, list):
                            for x in incoming:
                                if not any(_jeq(x, y) for y in cur):
                                    cur.append(x)
                elif op == "$remove":
                    for k, v in payload.items():
                        cur = props.get(k)
                        if isinstance(cur, list):
                            cur[:] = [x for x in cur if not _jeq(x, v)]
    names = {k["key"]: k["name_property"] for k in keys}
    rows = []
    dumps = json.dumps
    for (gk, gid), (props, created, updated) in groups.items():
        if gk not in names:
            continue
        np_ = names[gk]
        v = props.get(np_) if np_ else None
        if v is None:
            name = gid
        elif isinstance(v, str):
            name = v
        else:
            name = dumps(v, separators=(",", ":"), ensure_ascii=False)
        rows.append(
            (gk, gid, name, dumps(props, sort_keys=True, separators=(",", ":"), ensure_ascii=False), created, updated)
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows, ops, bad


_MISSING = object()


class Background:
    """Runs `fn` in a thread; `.result()` joins and re-raises."""

    def __init__(self, fn, *args):
        self._out = None
        self._err = None
        self.seconds = 0.0

        def run():
            t = time.perf_counter()
            try:
                self._out = fn(*args)
            except BaseException as e:  # noqa: BLE001 - re-raised in result()
                self._err = e
            self.seconds = time.perf_counter() - t

        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()

    def result(self):
        self._t.join()
        if self._err is not None:
            raise self._err
        return self._out


def finish(tool: str, version: str, phases: dict, prof, write_profiles, out_dir: str, t_all: float):
    """Waits for the overlapped profile fold, writes its table and reports the run."""
    t = time.perf_counter()
    rows, ops, bad = prof.result()
    phases["profiles wait"] = time.perf_counter() - t
    phases["profiles fold (python, overlapped)"] = prof.seconds
    t = time.perf_counter()
    write_profiles(rows, out_dir)
    phases["profiles write"] = time.perf_counter() - t
    phases["total"] = time.perf_counter() - t_all
    report(tool, phases, {"profile_ops": ops, "profile_bad": bad, "version": version})


def report(tool: str, phases: dict, extra: dict | None = None):
    """One JSON line on stdout that the harness reads."""
    out = {"tool": tool, "phases_s": {k: round(v, 3) for k, v in phases.items()}}
    if extra:
        out.update(extra)
    print("PEER_REPORT " + json.dumps(out), flush=True)
