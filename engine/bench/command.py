"""`mirror-engine bench` arguments and entry point (kept free of heavy imports until it runs)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

RECORD_SIZES = {"100": 100, "100b": 100, "1k": 1024, "1kb": 1024, "1024": 1024, "10k": 10240, "10kb": 10240,
                "10240": 10240}
QUICK_RECORDS = 20_000
# the rows of the table (engine.bench.settings.REPLICATORS, kept here free of its imports)
ROWS = ("ceiling", "floor", "mm2-defaults", "mm2-tuned", "franz", "python", "c")
# engine.bench.security.MODES without plaintext, which always runs
SECURITY_MODES = ("tls", "mtls", "sasl_ssl-scram")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _sizes(text: str) -> list[int]:
    sizes = []
    for item in text.split(","):
        key = item.strip().lower().replace(" ", "")
        if key not in RECORD_SIZES:
            raise argparse.ArgumentTypeError(f"record size {item!r}: use 100, 1k or 10k")
        sizes.append(RECORD_SIZES[key])
    return sizes


def _names(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}")
        return names
    return parse


def _rows(text: str) -> list[str]:
    names = _names(ROWS + ("mm2",))(text)
    expanded = [n for name in names for n in (("mm2-defaults", "mm2-tuned") if name == "mm2" else (name,))]
    return list(dict.fromkeys(expanded))


def default_out() -> Path:
    return Path(__file__).resolve().parents[2] / "benchmarks" / "results" / time.strftime("%Y%m%d-%H%M%S")


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("--records", type=int, default=None,
                       help=("records preloaded before the warm-up round, which then sizes the topic for "
                             "--window-seconds (default 200000; 20000 with --quick, which sizes nothing)"))
    bench.add_argument("--window-seconds", type=float, default=None,
                       help=("steady window of the fastest replicator, seconds (default 10; 0 with --quick: "
                             "whole-copy windows, no sizing)"))
    bench.add_argument("--record-size", type=_sizes, action="append", default=None, metavar="SIZES",
                       help="value size: 100, 1k or 10k; repeatable or a comma list (default 1k; sweep: 100,1k)")
    bench.add_argument("--partitions", type=_int_list, default=None, metavar="N[,N]",
                       help="partitions of each topic (default 4; sweep: a list, default 2,4)")
    bench.add_argument("--workers", type=_int_list, default=None, metavar="N[,N]",
                       help="tasks.max (default: the CPU count; sweep: a list, default 1,2)")
    bench.add_argument("--runs", type=int, default=None, help="measured runs per case (default 3; sweep 1)")
    bench.add_argument("--compression", type=_names(("none", "lz4", "snappy", "zstd", "gzip")), default=None,
                       help="target producer compression, comma list (default none,lz4; sweep: none)")
    bench.add_argument("--replicators", type=_rows, default=list(ROWS),
                       help=f"subset of {','.join(ROWS)} (mm2: both MM2 rows)")
    bench.add_argument("--security", type=_names(SECURITY_MODES), default=[], metavar="MODES",
                       help=(f"also run every row over these client security settings, comma list of "
                             f"{', '.join(SECURITY_MODES)}, each a row of its own beside plaintext (sandbox "
                             "clusters only)"))
    bench.add_argument("--skip-latency", action="store_true", help="leave out the half-load latency phase")
    bench.add_argument("--latency-seconds", type=float, default=None,
                       help="seconds of load in the latency phase (default 15; 5 with --quick)")
    bench.add_argument("--latency-loads", type=_int_list, default=None, metavar="PERCENTS",
                       help="offered loads of the latency phase, percent of the ceiling (default 50; e.g. 25,50,75)")
    bench.add_argument("--latency-record-size", type=_sizes, default=None, metavar="SIZES",
                       help="record sizes of the latency phase (default: every --record-size)")
    bench.add_argument("--no-warmup", action="store_true", help="no discarded warm-up run (not for real numbers)")
    bench.add_argument("--quick", action="store_true",
                       help="smoke run: 20000 records, 1 run per case, no warm-up, short latency phase")
    bench.add_argument("--sweep", action="store_true",
                       help="capacity planning: mirror-engine (C loop) over partitions × workers × record size")
    bench.add_argument("--target-mbps", type=float, default=100.0,
                       help="the rate the sweep's sizing answer is for, MB/s (default 100)")
    bench.add_argument("--source-bootstrap", default=None, help="existing source cluster (default: a sandbox)")
    bench.add_argument("--target-bootstrap", default=None, help="existing target cluster")
    bench.add_argument("--out", type=Path, default=None,
                       help="results folder (default benchmarks/results/<timestamp>/)")
    bench.add_argument("--compare", type=Path, default=None, metavar="EARLIER",
                       help=("an earlier results folder: print each figure of this run as a ratio to it "
                             "(rows matched by record size, compression and replicator), also in compare.md"))
    bench.add_argument("--current", type=Path, default=None, metavar="LATER",
                       help="with --compare: compare this existing results folder instead of running")


def settings_from(args: argparse.Namespace):
    from engine.bench.mm2 import cpu_count
    from engine.bench.settings import Settings

    sizes = [s for group in (args.record_size or []) for s in group]
    partitions = args.partitions or ([2, 4] if args.sweep else [4])
    workers = args.workers or ([1, 2] if args.sweep else [cpu_count()])
    if not args.sweep and (len(partitions) > 1 or len(workers) > 1):
        raise ValueError("--partitions and --workers take one value each unless --sweep")
    settings = Settings(
        records=args.records or (QUICK_RECORDS if args.quick else 200_000),
        record_sizes=list(dict.fromkeys(sizes)) or ([100, 1024] if args.sweep else [1024]),
        partitions=partitions[0],
        runs=args.runs or (1 if args.quick or args.sweep else 3),
        compressions=args.compression or (["none"] if args.sweep else ["none", "lz4"]),
        replicators=args.replicators,
        tasks_max=workers[0],
        latency=not args.skip_latency and not args.sweep,
        latency_seconds=args.latency_seconds or (5.0 if args.quick else 15.0),
        warmup=not (args.no_warmup or args.quick),
        window_s=args.window_seconds if args.window_seconds is not None else (0.0 if args.quick else 10.0),
        securities=list(dict.fromkeys(["plaintext", *args.security])),
        latency_loads=[p / 100 for p in args.latency_loads or [50]],
        latency_record_sizes=list(dict.fromkeys(args.latency_record_size or [])),
    )
    if any(share >= 1 for share in settings.latency_loads):
        raise ValueError("--latency-loads are percents of the ceiling, below 100")
    if settings.window_s < 0:
        raise ValueError(f"--window-seconds must be 0 or more, got {settings.window_s:g}")
    if len(settings.securities) > 1 and (args.sweep or args.source_bootstrap):
        raise ValueError("--security runs on the benchmark's own sandbox clusters: not with --sweep or "
                         "--source-bootstrap")
    if settings.records < 1:
        raise ValueError(f"--records must be at least 1, got {settings.records}")
    return settings, partitions, workers


def _terminated(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    from engine.bench import compare, report, sweep
    from engine.bench.harness import Clusters, fetch_tools, run_benchmark
    from engine.bench.plots import write_plots
    from engine.bench.schedule import Journal, estimate_line, steps

    try:
        settings, partitions, workers = settings_from(args)
        if args.current is not None and args.compare is None:
            raise ValueError("--current needs --compare EARLIER")
        if args.compare is not None and args.sweep:
            raise ValueError("--compare compares benchmark reports, not sweeps")
        earlier = compare.load_results(args.compare) if args.compare is not None else None
        if args.current is not None:
            assert earlier is not None  # --current needs --compare, checked above
            print(compare.compare_text(compare.compare(earlier, compare.load_results(args.current)),
                                       args.compare.name), end="")
            return 0
    except ValueError as error:  # CompareError too
        print(f"mirror-engine bench: {error}", file=sys.stderr)
        return 2
    out = (args.out or default_out()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        # a folder with an unfinished run of the same settings resumes it (engine/bench/schedule.py)
        journal = None if args.sweep else Journal(out, settings)
    except ValueError as error:  # JournalMismatch
        print(f"mirror-engine bench: {error}", file=sys.stderr)
        return 2

    def say(text: str) -> None:
        print(text, flush=True)

    if args.sweep:
        settings.replicators = [sweep.SWEEP_REPLICATOR]
    clusters = Clusters(args.source_bootstrap, args.target_bootstrap, say=say, security_modes=settings.securities)
    say(f"mirror-engine bench: results in {out}")
    fetch_tools(settings, say)
    if journal is not None:
        planned = steps(settings)
        say(estimate_line(planned, journal.pending(planned), settings))
    # SIGTERM (a `timeout`, a CI cancel) ends the run through the finally blocks below and in the
    # harness: the running replicator and the sandbox clusters are stopped, not left running
    signal.signal(signal.SIGTERM, _terminated)
    try:
        clusters.start()
        if args.sweep:
            document = sweep.run_sweep(settings, partitions, workers, clusters, out, args.target_mbps, say)
            written = sweep.write_sweep_report(out, document)
            say("")
            say(sweep.sweep_table(document["points"]))
            say("")
            for answer in document["sizing"]:
                say(f"sizing: {answer['answer']}")
        else:
            document = run_benchmark(settings, clusters, out, say, journal)
            written = report.write_report(out, document, write_plots(out, document["summary"], document["latency"]))
            say("")
            say(report.markdown_table(document["summary"]))
            if document["latency"]:
                say("")
                say(report.latency_table(document["latency"]))
            for note in sorted({n for e in document["summary"] for n in e.get("notes", [])}):
                say(f"note: {note}")
            if earlier is not None:
                text = compare.compare_text(compare.compare(earlier, document), args.compare.name)
                (out / "compare.md").write_text(text)
                written["compare"] = out / "compare.md"
                say("")
                say(text)
    finally:
        clusters.close()
        if not clusters.external:
            say("benchmark clusters stopped")
    say("")
    say("written: " + ", ".join(str(p.relative_to(out)) for p in written.values()) + f" in {out}")
    failed = [r for r in document["runs"] if r.get("error")]
    return 1 if failed else 0
