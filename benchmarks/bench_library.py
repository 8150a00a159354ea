"""The library through the real CLI at 100,000 papers: wall time and peak RSS of each command,
for this checkout and (with ``--before DIR``) another one, e.g. the code before the library.

    git worktree add /tmp/before af5184c            # the code to compare with
    python benchmarks/bench_library.py --before /tmp/before
    python benchmarks/bench_library.py --days 10    # a quick look: 10,000 papers

A local stand-in for Hugging Face's Daily Papers API serves ``--per-day`` papers (1,000) for
each of ``--days`` days (100): real titles and abstracts from ``--data`` (the shared data's
arXiv papers, bundled in examples/), each made unique. For each checkout, in a state dir of its
own, every command is a fresh ``python -m agent`` process (its peak RSS from ``wait4``):

1. ``run --source hf:DAY`` x days in one run, offline backend: 100,000 papers annotated, written
   to a results file and marked seen (and recorded, with the library).
   Every paper then comes in "today"; so that the days are days, the papers of each source day
   are dated to that day in the library (one SQL update, the clock cron would have kept).
2. ``run --source hf:DAY`` of a new day, ``--repeat`` times: a day's run on the full state dir.
3. A day's digest: ``digest --date DAY`` from the library; for a checkout without it, ``digest``
   of that day's results file (the lines of step 1 whose source is that day).
4. ``seen list --json`` (every seen paper) and ``runs --all``.

Never reaches the network: the stand-in listens on 127.0.0.1, an ephemeral port.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
FIRST_DAY = dt.date(2025, 1, 6)


class Papers:
    """``per_day`` made-up Daily Papers items a day, from real titles and abstracts."""

    def __init__(self, data: Path, per_day: int) -> None:
        lines = data.read_text(encoding="utf-8").splitlines()
        self.rows = [json.loads(line) for line in lines if line.strip()]
        self.per_day = per_day

    def item(self, day: int, n: int) -> dict[str, object]:
        """Paper ``n`` of ``day`` (0-based) as the API gives it."""
        index = day * self.per_day + n
        row = self.rows[index % len(self.rows)]
        pid = f"{25 + index // 1_200_000:02d}{index // 100_000 % 12 + 1:02d}.{index % 100_000:05d}"
        published = (FIRST_DAY + dt.timedelta(days=day)).isoformat() + "T12:00:00.000Z"
        inner = {
            "id": pid,
            "title": f"{row['title']} ({index // len(self.rows) + 1})",
            "summary": row["abstract"],
            "authors": [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}],
            "publishedAt": published,
            "upvotes": index % 40,
        }
        return {"paper": inner, "publishedAt": published, "numComments": 0}


def serve(papers: Papers, days: int) -> ThreadingHTTPServer:
    """The stand-in API on 127.0.0.1: ``?date=D&limit=L&p=P``, an empty page past the day."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            day = (dt.date.fromisoformat(query["date"][0]) - FIRST_DAY).days
            limit, page = int(query["limit"][0]), int(query.get("p", ["0"])[0])
            first, last = page * limit, min((page + 1) * limit, papers.per_day)
            items = [papers.item(day, n) for n in range(first, last)] if day >= 0 else []
            body = json.dumps(items).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Side:
    """One checkout's commands, in a state dir and a working directory of its own."""

    def __init__(self, name: str, checkout: Path, scratch: Path, api: str) -> None:
        self.name = name
        self.checkout = checkout
        self.work = scratch / name
        self.work.mkdir()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(checkout),
            "PAPER_AGENT_HOME": str(self.work / "home"),
            "PAPER_AGENT_HF_API_URL": api,
        }
        self.has_library = (checkout / "agent" / "cli" / "runs.py").exists()  # wired in

    def run(self, *args: str) -> tuple[float, float]:
        """Wall seconds and peak RSS (MiB) of ``paper-agent ARGS`` (its stdout discarded)."""
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", *args],
            cwd=self.work,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert process.stderr is not None
        errors = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise SystemExit(f"{self.name}: paper-agent {' '.join(args)}: exit {code}\n{errors}")
        return wall, usage.ru_maxrss / 1024


def date_the_days(home: Path, days: int) -> None:
    """Date each source day's papers (and the run) to that day, as cron would have."""
    conn = sqlite3.connect(home / "library.sqlite3")
    with conn:
        for day in range(days):
            when = f"{FIRST_DAY + dt.timedelta(days=day)}T07:00:00.000000+00:00"
            conn.execute(
                "UPDATE papers SET first_seen = ?1, seen = ?1, updated = ?1 WHERE sources = ?2",
                (when, json.dumps([f"hf:{FIRST_DAY + dt.timedelta(days=day)}"])),
            )
    conn.close()


def measure(side: Side, days: int, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Every measured command of one side: name -> (wall, peak RSS) per repeat."""
    out: dict[str, list[tuple[float, float]]] = {}
    sources = [w for d in range(days) for w in ("--source", f"hf:{FIRST_DAY + dt.timedelta(d)}")]
    common = ["--backend", "local", "--max", "2000"]
    print(f"{side.name}: run of {days} day(s) ...", file=sys.stderr)
    out[f"run --source x{days} (all papers)"] = [
        side.run("run", *sources, *common, "-o", "all.jsonl")
    ]
    if side.has_library:
        date_the_days(side.work / "home", days)
    for n in range(repeat):
        day = FIRST_DAY + dt.timedelta(days=days + n)
        out.setdefault("run --source (a new day)", []).append(
            side.run("run", "--source", f"hf:{day}", *common, "-o", f"day-{n}.jsonl")
        )
    for n in range(repeat):
        day = FIRST_DAY + dt.timedelta(days=days // 2 + n)
        if side.has_library:
            args = ["digest", "--date", str(day)]
        else:
            wanted = f'"source":"hf:{day}"'
            with (side.work / "all.jsonl").open(encoding="utf-8") as lines:
                picked = [line for line in lines if wanted in line]
            (side.work / "that-day.jsonl").write_text("".join(picked), encoding="utf-8")
            args = ["digest", "that-day.jsonl", "--date", str(day)]
        out.setdefault("a day's digest (markdown)", []).append(side.run(*args, "-o", "day.md"))
    for _ in range(repeat):
        out.setdefault("seen list --json (every paper)", []).append(
            side.run("seen", "list", "--json")
        )
        if side.has_library:
            out.setdefault("runs --all", []).append(side.run("runs", "--all"))
    return out


def main() -> None:
    """Measure and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", type=Path, help="Another checkout to compare with.")
    parser.add_argument(
        "--data", type=Path, default=ROOT / "examples" / "arxiv-categories-dev.jsonl"
    )
    args = parser.parse_args()
    papers = Papers(args.data, args.per_day)
    server = serve(papers, args.days)
    api = f"http://127.0.0.1:{server.server_port}/api/daily_papers"
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        sides = [Side("after", ROOT, Path(scratch), api)]
        if args.before is not None:
            sides.insert(0, Side("before", args.before.resolve(), Path(scratch), api))
        for side in sides:
            results[side.name] = measure(side, args.days, args.repeat)
            size = sum(f.stat().st_size for f in (side.work / "home").rglob("*") if f.is_file())
            print(f"{side.name}: state dir {size / 2**20:.0f} MiB", file=sys.stderr)
    server.shutdown()
    print(f"{args.days * args.per_day:,} papers ({args.days} days of {args.per_day:,}); medians")
    names = list(dict.fromkeys(n for side in results.values() for n in side))
    header = "| command | " + " | ".join(f"{s}: wall, peak RSS" for s in results) + " |"
    print(header)
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = []
        for side in results.values():
            if name not in side:
                cells.append("n/a")
                continue
            walls, rss = zip(*side[name], strict=True)
            cells.append(f"{statistics.median(walls):.2f} s, {statistics.median(rss):.0f} MiB")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
