"""What each `mirror-engine` sub-command does, given its parsed arguments (engine.cli builds the
parser and turns a failure into one line and an exit code). Heavy imports wait until a command runs."""

from __future__ import annotations

import argparse
import sys


class CliError(Exception):
    """A failure to report in one line and exit 2."""




def reach(engine_config, aliases, timeout_s: float) -> None:
    """The command's clusters answer, or one line names the first that does not (exit 2)."""
    from engine.clients import cluster_id

    for alias in sorted(set(aliases)):
        cluster_id(engine_config.cluster(alias), timeout_s)


def run(args: argparse.Namespace) -> int:
    import msgspec
    import uvloop

    from engine.config.loading import for_targets, load
    from engine.config.model import EngineConfig
    from engine.coordinator.coordinator import Coordinator

    def load_config(quiet: bool = False) -> EngineConfig:
        """The file as this command serves it; read again, quietly, at each reload."""
        engine_config = load(args.config, quiet)
        if args.clusters:
            engine_config = for_targets(engine_config, args.clusters)
        if args.loop is not None:
            engine_config = msgspec.structs.replace(engine_config, loop=args.loop)
        return engine_config

    return uvloop.run(Coordinator(load_config(), metrics_listen=args.metrics_listen, reload=load_config).run())


def check_config(args: argparse.Namespace) -> int:
    """Prints the resolved clusters and flows (secrets hidden) and where they differ from MM2."""
    from engine.config.loading import load
    from engine.config.report import report
    from engine.config.unknown_keys import unknown_key_message

    loaded = load(args.config, quiet=True)
    print(report(loaded))
    if loaded.unknown_keys and not args.lenient:
        for key, meant in loaded.unknown_keys:
            print(f"mirror-engine: error: {unknown_key_message(key, meant)}", file=sys.stderr)
        print(f"mirror-engine: {len(loaded.unknown_keys)} unknown keys; MM2 and `run` ignore them (--lenient "
              "accepts them here too)", file=sys.stderr)
        return 1
    return 0


def sandbox_up(args: argparse.Namespace) -> int:
    from engine.sandbox import KafkaCluster

    for name in cluster_names(args.clusters):
        cluster = KafkaCluster(name, nodes=args.nodes).start()
        print(f"{name}.bootstrap.servers = {cluster.bootstrap_servers}", flush=True)
    return 0


def sandbox_down(args: argparse.Namespace) -> int:
    from engine.sandbox import KafkaCluster
    from engine.sandbox.distribution import cache_root

    base = cache_root() / "sandbox"
    names = cluster_names(args.clusters) if args.clusters else sorted(
        p.name for p in base.iterdir() if (p / "cluster.json").exists()
    ) if base.exists() else []
    for name in names:
        cluster = KafkaCluster.attach(name)
        if cluster is None:
            print(f"{name}: not running", file=sys.stderr)
            continue
        cluster.stop()
        print(f"{name}: stopped")
    return 0


def move_group(args: argparse.Namespace) -> int:
    """failover and failback: plan, print the table, then commit unless --dry-run."""
    from engine.config.loading import load
    from engine.offsets import failover

    engine_config = load(args.config)
    reach(engine_config, known(engine_config, args.source, args.target), args.timeout)
    unresolved: list[str]
    if args.command == "failover":
        moves, unresolved = failover.plan(engine_config, args.group, args.source, args.target), []
    else:
        moves, unresolved = failover.plan_failback(engine_config, args.group, args.source, args.target)
    print(failover.table(args.group, args.source, args.target, moves))
    for line in unresolved:
        print(f"not translated: {line}")
    if args.dry_run:
        print("dry run: nothing changed")
        return 0
    if unresolved:
        raise failover.FailoverError(
            f"{len(unresolved)} positions of group {args.group!r} cannot be translated; nothing changed")
    failover.apply(engine_config, args.group, args.target, moves)
    print(f"committed {len(moves)} offsets for group {args.group} on cluster {args.target}")
    return 0


def cutover(args: argparse.Namespace) -> int:
    from engine.clients import CLUSTER_CHECK_TIMEOUT_S
    from engine.config.loading import load
    from engine.offsets.cutover import run_cutover

    engine_config = load(args.config)
    reach(engine_config, known(engine_config, args.source, args.target), min(args.timeout, CLUSTER_CHECK_TIMEOUT_S))
    return run_cutover(engine_config, args.source, args.target, args.groups, args.timeout)


def audit(args: argparse.Namespace) -> int:
    from engine.audit.comparison import report
    from engine.audit.flow import audit_flow
    from engine.config.loading import load
    from engine.progress import Progress

    engine_config = load(args.config)
    flows = [f for f in engine_config.flows if args.flow in (None, f.name)]
    if not flows:
        raise CliError(f"--flow: no enabled flow named {args.flow!r}")
    reach(engine_config, [a for f in flows for a in (f.source, f.target)], args.timeout)
    ok = True
    for flow in flows:
        with Progress(f"audit {flow.name}") as progress:
            results = audit_flow(engine_config, flow, progress=progress)
        print(f"{flow.name}:")
        print(report(results))
        ok &= all(r.ok for r in results)
    return 0 if ok else 1


def acls(args: argparse.Namespace) -> int:
    """The ACLs the engine's principal needs on each cluster: a table, then kafka-acls.sh commands."""
    from engine.config.loading import load
    from engine.security.acls import audit_acls, kafka_acls_commands, required_acls, table

    engine_config = load(args.config)
    acls = required_acls(engine_config) if args.command_for == "run" else audit_acls(engine_config)
    print(f"ACLs for `mirror-engine {args.command_for}` with {args.config}:")
    print(table(acls))
    print()
    print(kafka_acls_commands(engine_config, acls, args.principal))
    return 0


def skip(args: argparse.Namespace) -> int:
    """Moves a stopped partition's stored progress past records it must leave out."""
    from engine.clients import client_config
    from engine.config.loading import load
    from engine.worker.progress import ProgressStore

    engine_config = load(args.config)
    flows = {f.name: f for f in engine_config.flows}
    flow = flows.get(args.flow)
    if flow is None:
        raise CliError(f"--flow: no enabled flow named {args.flow!r} (enabled: {', '.join(flows) or 'none'})")
    if args.past < 0:
        raise CliError("--past: an offset, 0 or more")
    target = engine_config.cluster(flow.target)
    reach(engine_config, [flow.target], args.timeout)
    store = ProgressStore(flow.source, flow.target, flow.offsets_topic,
                          consumer_config=client_config(target, f"{flow.name}|skip|progress-consumer"),
                          producer_config=client_config(target, f"{flow.name}|skip|progress-producer"))
    before = store.load().get((args.topic, args.partition), -1)
    if args.past <= before:
        print(f"{flow.name}: {args.topic}[{args.partition}] is already past offset {args.past} (stored progress "
              f"{before}); nothing changed")
        return 0
    store.store([(args.topic, args.partition, args.past)])
    print(f"{flow.name}: {args.topic}[{args.partition}] continues at offset {args.past + 1}; records "
          f"{before + 1}..{args.past} are left out (the audit will list them as missing)")
    return 0


def status(args: argparse.Namespace) -> int:
    """One screen about a running engine, from its /status endpoint; 1 when it is not ready."""
    from engine.observability.status import StatusUnavailable, run_status

    try:
        return run_status(args.url, args.config)
    except StatusUnavailable as error:
        raise CliError(str(error)) from None


def demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    return run_demo(records_per_topic=args.records)


def bench(args: argparse.Namespace) -> int:
    from engine.bench.command import run

    return run(args)


def known(engine_config, *aliases: str) -> list[str]:
    """The aliases, each a cluster of the file (else one line naming it, exit 2)."""
    for alias in aliases:
        if alias not in engine_config.clusters:
            raise CliError(f"cluster {alias!r} is not in the file's clusters "
                           f"({', '.join(sorted(engine_config.clusters))})")
    return list(aliases)


def cluster_names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise CliError("--clusters: give at least one cluster name, e.g. A,B")
    return names
