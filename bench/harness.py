#!/usr/bin/env python3
"""Runs groupetl, DuckDB and Polars on the same files, measures wall time and peak RSS,
checks that their outputs agree, and writes a markdown results table. Started by
bench/run.sh, which builds, generates the data and writes the job files first.

Each (tool, input) pair: one warm-up run (hot page cache), then --runs measured runs; the
output folder is removed before every run, outside the timing. Wall time is measured
around the child process; peak RSS is the child's ru_maxrss from wait4(2), so nothing of
this harness is counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ("duckdb", "polars")
OTHER = []  # CPU used by other processes during each measured run, in cores


def measure_wait4(cmd, env, log_path):
    """Fork/exec `cmd`, stdout to a pipe, stderr to `log_path`; wait4 gives the child's
    own peak RSS (ru_maxrss, KiB on Linux) and CPU time."""
    r, w = os.pipe()
    errfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.dup2(w, 1)
            os.dup2(errfd, 2)
            os.close(r)
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    os.close(w)
    os.close(errfd)
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    rc = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss * 1024, rc, b"".join(chunks).decode(errors="replace"), ru.ru_utime + ru.ru_stime


def busy_cpu_seconds():
    """Non-idle CPU time of the whole machine so far (/proc/stat), in seconds."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def tool_cmd(tool, fmt, args, out_dir):
    job = os.path.join(args.data, "jobs", f"bench-{fmt}.toml")
    env = dict(os.environ)
    if tool == "groupetl":
        env["RAYON_NUM_THREADS"] = str(args.threads)
        env["GROUPETL_NO_PROGRESS"] = "true"
        return [args.groupetl, "run", job, "--format", "json"], env
    script = os.path.join(HERE, "peers", f"{tool}_tables.py")
    return [args.python, script, job, "--out", out_dir, "--threads", str(args.threads)], env


def out_dir_of(args, tool, fmt):
    # must match the job files run.sh writes for groupetl
    return os.path.join(args.data, "out", f"{tool}-{fmt}")


def parse_phases(tool, stdout):
    if tool == "groupetl":
        try:
            j = json.loads(stdout)
        except ValueError:
            return {}, {}
        phases = {p["phase"]: p["ms"] / 1000 for p in j.get("phases_ms", [])}
        return phases, j
    for line in stdout.splitlines():
        if line.startswith("PEER_REPORT "):
            j = json.loads(line[len("PEER_REPORT "):])
            return j.get("phases_s", {}), j
    return {}, {}


def input_stats(args, fmt):
    pattern = "parquet/*.parquet" if fmt == "parquet" else "ndjson/*.ndjson.gz"
    files = sorted(glob.glob(os.path.join(args.data, pattern)))
    ops = os.path.join(args.data, "groups", "ops.ndjson")
    size = sum(os.path.getsize(f) for f in files) + (os.path.getsize(ops) if os.path.exists(ops) else 0)
    return files, size


def event_rows(args):
    files = sorted(glob.glob(os.path.join(args.data, "parquet", "*.parquet")))
    if files:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return None


def size_label(n):
    """2000000 -> "2M", 200000 -> "200k", 1000000000 -> "1B"."""
    for div, unit in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= div:
            return f"{n / div:g}{unit}"
    return str(n)


def fmt_bytes(n):
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--groupetl", required=True)
    ap.add_argument("--groupetl-rev", default=None, help="git revision the binary was built from")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--formats", default="parquet ndjson")
    ap.add_argument("--tools", default="groupetl duckdb polars")
    ap.add_argument("--events", type=int, default=0, help="generated events (for the label)")
    ap.add_argument("--results", default=None, help="results markdown path")
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args()
    args.data = os.path.abspath(args.data)
    formats = args.formats.split()
    tools = args.tools.split()
    logs = os.path.join(args.data, "logs")
    os.makedirs(logs, exist_ok=True)

    rows_in = event_rows(args)
    results = {}  # (tool, fmt) -> dict
    for fmt in formats:
        files, size = input_stats(args, fmt)
        if not files:
            sys.exit(f"bench: no {fmt} input under {args.data}")
        for tool in tools:
            out = out_dir_of(args, tool, fmt)
            cmd, env = tool_cmd(tool, fmt, args, out)
            walls, rsss, phases_runs, cpus = [], [], [], []
            last_summary = {}
            for i in range(args.warmup + args.runs):
                shutil.rmtree(out, ignore_errors=True)
                kind = "warm-up" if i < args.warmup else f"run {i - args.warmup + 1}/{args.runs}"
                log = os.path.join(logs, f"{tool}-{fmt}-{i}.stderr")
                busy0 = busy_cpu_seconds()
                wall, rss, rc, stdout, cpu = measure_wait4(cmd, env, log)
                other = max(0.0, busy_cpu_seconds() - busy0 - cpu)
                if rc != 0:
                    print(f"bench: {tool} on {fmt} failed (exit {rc}); stderr in {log}:", file=sys.stderr)
                    with open(log) as f:
                        sys.stderr.write(f.read()[-4000:])
                    sys.exit(1)
                phases, summary = parse_phases(tool, stdout)
                print(
                    f"  {tool:<9} {fmt:<8} {kind:<10} {wall:8.2f} s  peak RSS {fmt_bytes(rss):>10}  CPU {cpu:7.2f} s"
                    f"  (other processes: {other:.2f} CPU s)",
                    flush=True,
                )
                if i >= args.warmup:
                    OTHER.append(other / wall)
                    cpus.append(cpu)
                    walls.append(wall)
                    rsss.append(rss)
                    phases_runs.append(phases)
                    last_summary = summary
            med = statistics.median(walls)
            # phases of the run whose wall time is the median (the middle one)
            mid = sorted(range(len(walls)), key=lambda k: walls[k])[len(walls) // 2]
            events = rows_in
            if events is None and tool == "groupetl":
                events = last_summary.get("events", {}).get("read")
            results[(tool, fmt)] = {
                "walls": walls,
                "wall": med,
                "rss": max(rsss),
                "cpu": statistics.median(cpus),
                "phases": phases_runs[mid],
                "summary": last_summary,
                "bytes": size,
                "files": len(files),
                "events": events,
            }

    check_text = ""
    check_ok = True
    if not args.no_check and "groupetl" in tools:
        lines = []
        py = args.python
        for fmt in formats:
            ref = out_dir_of(args, "groupetl", fmt)
            others = [out_dir_of(args, t, fmt) for t in tools if t != "groupetl"]
            if fmt != formats[0]:
                others.append(out_dir_of(args, "groupetl", formats[0]))
            if not others:
                continue
            p = subprocess.run([py, os.path.join(HERE, "check.py"), ref, *others], capture_output=True, text=True)
            print(p.stdout, end="")
            sys.stderr.write(p.stderr)
            lines.append(p.stdout)
            if p.returncode != 0:
                check_ok = False
        check_text = "".join(lines)

    md = report(args, formats, tools, results, check_text, check_ok)
    # Size in the name: runs of different sizes on one day must not overwrite each other.
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())
    path = args.results or os.path.join(
        HERE, f"results-{host}-{dt.date.today().isoformat()}-{size_label(args.events)}.md"
    )
    with open(path, "w") as f:
        f.write(md)
    print()
    print(md)
    print(f"bench: results written to {path}")
    if not check_ok:
        print("bench: OUTPUT MISMATCH between groupetl and a peer: see the check section above", file=sys.stderr)
        sys.exit(1)


def versions(args):
    v = {}
    try:
        v["groupetl"] = subprocess.run([args.groupetl, "--version"], capture_output=True, text=True).stdout.strip()
        v["groupetl"] = v["groupetl"].removeprefix("groupetl ")
        rev = args.groupetl_rev or subprocess.run(
            ["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True, text=True
        ).stdout.strip()
        if rev:
            v["groupetl"] += f" ({rev})"
    except OSError:
        pass
    code = "import duckdb, polars, pyarrow; print(duckdb.__version__, polars.__version__, pyarrow.__version__)"
    out = subprocess.run([args.python, "-c", code], capture_output=True, text=True).stdout.split()
    if len(out) == 3:
        v["duckdb"], v["polars"], v["pyarrow"] = out
    v["python"] = subprocess.run([args.python, "--version"], capture_output=True, text=True).stdout.strip()
    return v


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def mem_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return fmt_bytes(int(line.split()[1]) * 1024)
    except OSError:
        pass
    return "?"


def report(args, formats, tools, results, check_text, check_ok):
    v = versions(args)
    events = next((r["events"] for r in results.values() if r["events"]), None)
    L = []
    L.append(f"# groupetl bench: {socket.gethostname()}, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    L.append("")
    L.append(
        f"- workload: `{args.data}` ({args.events:,} generated events; {events:,} event rows read incl. re-delivered copies)"
        if events
        else f"- workload: `{args.data}`"
    )
    L.append(f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {mem_total()} RAM; {platform.platform()}")
    L.append(f"- threads: {args.threads} for every tool; {args.runs} measured runs after {args.warmup} warm-up (hot page cache); median wall, max peak RSS")
    L.append("- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    if OTHER:
        busy = " (**other work was running: timings are noisy**)" if max(OTHER) > 0.1 else ""
        L.append(f"- CPU used by other processes during the measured runs: at most {max(OTHER):.2f} cores{busy}")
    L.append("")
    L.append("| tool | input | events | wall (median) | peak RSS | events/s | MB/s | × fastest peer | CPU (median) | runs (s) |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for fmt in formats:
        peer_walls = [results[(t, fmt)]["wall"] for t in tools if t in PEERS and (t, fmt) in results]
        fastest = min(peer_walls) if peer_walls else None
        for tool in tools:
            r = results.get((tool, fmt))
            if not r:
                continue
            ev = r["events"]
            eps = f"{ev / r['wall'] / 1e6:,.2f} M" if ev else "?"
            mbs = f"{r['bytes'] / 1e6 / r['wall']:,.0f}"
            ratio = f"{r['wall'] / fastest:.2f}×" if fastest else "–"
            label = {"parquet": "Parquet", "ndjson": "NDJSON.gz"}[fmt]
            L.append(
                f"| {tool} | {label} ({r['files']} files, {r['bytes'] / 1e6:,.0f} MB) | {ev:,} | {r['wall']:.2f} s | "
                f"{fmt_bytes(r['rss'])} | {eps} | {mbs} | {ratio} | {r['cpu']:.2f} s | {', '.join(f'{w:.2f}' for w in r['walls'])} |"
            )
    L.append("")
    L.append("events = event rows in the input (re-delivered duplicates included); MB/s = input bytes (event files + "
             "profile ops) / wall; × fastest peer = wall / the faster of DuckDB and Polars on the same input; "
             "CPU = user + system time of the tool's process.")
    L.append("")
    L.append("## Phases (the median run)")
    L.append("")
    for (tool, fmt), r in results.items():
        ph = ", ".join(f"{k} {val:.2f}s" for k, val in r["phases"].items())
        L.append(f"- {tool} / {fmt}: {ph}")
    L.append("")
    L.append("groupetl also computes group_lifecycle, group_retention and group_stickiness (the peers do not), "
             "and commits its output (staged files, state file). The peers fold the group profiles in plain Python "
             "in a thread that overlaps the engine's work.")
    L.append("")
    if events and events >= 100_000_000 and ("groupetl", "parquet") in results:
        L.append("## Targets (issue 7)")
        L.append("")
        r = results[("groupetl", "parquet")]
        peer = [results[(t, "parquet")]["wall"] for t in PEERS if (t, "parquet") in results]
        ok = lambda b: "met" if b else "**missed**"  # noqa: E731
        L.append(f"- 100M Parquet wall ≤ 12 s: {r['wall']:.2f} s, {ok(r['wall'] <= 12)}")
        L.append(f"- 100M Parquet peak RSS ≤ 3 GiB: {fmt_bytes(r['rss'])}, {ok(r['rss'] <= 3 * 2**30)}")
        if peer:
            L.append(f"- 100M Parquet ≤ 0.55× the faster peer: {r['wall'] / min(peer):.2f}×, {ok(r['wall'] / min(peer) <= 0.55)}")
        if ("groupetl", "ndjson") in results:
            rn = results[("groupetl", "ndjson")]
            pn = [results[(t, "ndjson")]["wall"] for t in PEERS if (t, "ndjson") in results]
            if pn:
                L.append(f"- gzipped NDJSON at least as fast as the faster peer: {rn['wall'] / min(pn):.2f}×, {ok(rn['wall'] <= min(pn))}")
        L.append("")
    if check_text:
        L.append("## Output check (groupetl vs each peer, full contents)")
        L.append("")
        L.append("```")
        L.append(check_text.rstrip())
        L.append("```")
        L.append("")
        L.append("All outputs identical." if check_ok else "**MISMATCH: see above.**")
        L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    main()
