"""The `mirror-engine` command line."""

from __future__ import annotations

import argparse
import os
import sys

from engine.version import VersionAction


class CliError(Exception):
    """A failure to report in one line and exit 2."""


EXIT_CODES = "exit codes: 0 done, 2 could not run (bad input, a cluster that does not answer or refuses us)"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _reach(engine_config, aliases, timeout_s: float) -> None:
    """The command's clusters answer, or one line names the first that does not (exit 2)."""
    from engine.clients import cluster_id

    for alias in sorted(set(aliases)):
        cluster_id(engine_config.cluster(alias), timeout_s)


def _run(args: argparse.Namespace) -> int:
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


def _check_config(args: argparse.Namespace) -> int:
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


def _sandbox_up(args: argparse.Namespace) -> int:
    from engine.sandbox import KafkaCluster

    for name in _names(args.clusters):
        cluster = KafkaCluster(name, nodes=args.nodes).start()
        print(f"{name}.bootstrap.servers = {cluster.bootstrap_servers}", flush=True)
    return 0


def _sandbox_down(args: argparse.Namespace) -> int:
    from engine.sandbox import KafkaCluster
    from engine.sandbox.distribution import cache_root

    base = cache_root() / "sandbox"
    names = _names(args.clusters) if args.clusters else sorted(
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


def _move_group(args: argparse.Namespace) -> int:
    """failover and failback: plan, print the table, then commit unless --dry-run."""
    from engine.config.loading import load
    from engine.offsets import failover

    engine_config = load(args.config)
    _reach(engine_config, _known(engine_config, args.source, args.target), args.timeout)
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


def _cutover(args: argparse.Namespace) -> int:
    from engine.config.loading import load
    from engine.offsets.cutover import run_cutover

    from engine.clients import CLUSTER_CHECK_TIMEOUT_S

    engine_config = load(args.config)
    _reach(engine_config, _known(engine_config, args.source, args.target), min(args.timeout, CLUSTER_CHECK_TIMEOUT_S))
    return run_cutover(engine_config, args.source, args.target, args.groups, args.timeout)


def _audit(args: argparse.Namespace) -> int:
    from engine.config.loading import load
    from engine.audit.comparison import report
    from engine.audit.flow import audit_flow

    engine_config = load(args.config)
    flows = [f for f in engine_config.flows if args.flow in (None, f.name)]
    if not flows:
        raise CliError(f"--flow: no enabled flow named {args.flow!r}")
    _reach(engine_config, [a for f in flows for a in (f.source, f.target)], args.timeout)
    ok = True
    for flow in flows:
        results = audit_flow(engine_config, flow)
        print(f"{flow.name}:")
        print(report(results))
        ok &= all(r.ok for r in results)
    return 0 if ok else 1


def _acls(args: argparse.Namespace) -> int:
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


def _skip(args: argparse.Namespace) -> int:
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
    _reach(engine_config, [flow.target], args.timeout)
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


def _status(args: argparse.Namespace) -> int:
    """One screen about a running engine, from its /status endpoint; 1 when it is not ready."""
    from engine.observability.status import StatusUnavailable, run_status

    try:
        return run_status(args.url, args.config)
    except StatusUnavailable as error:
        raise CliError(str(error)) from None


def _demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    return run_demo(records_per_topic=args.records)


def _bench(args: argparse.Namespace) -> int:
    from engine.bench.command import run

    return run(args)


def _known(engine_config, *aliases: str) -> list[str]:
    """The aliases, each a cluster of the file (else one line naming it, exit 2)."""
    for alias in aliases:
        if alias not in engine_config.clusters:
            raise CliError(f"cluster {alias!r} is not in the file's clusters ({', '.join(sorted(engine_config.clusters))})")
    return list(aliases)


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise CliError("--clusters: give at least one cluster name, e.g. A,B")
    return names


def _log_options(parser: argparse.ArgumentParser, level, log_format) -> None:
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=level, metavar="LEVEL",
                        help=f"one of {', '.join(LOG_LEVELS)} (env MIRROR_ENGINE_LOG_LEVEL; default INFO)")
    parser.add_argument("--log-format", choices=("text", "json"), default=log_format,
                        help="text, or one JSON object per line (env MIRROR_ENGINE_LOG_FORMAT); workers follow")


class _SubcommandParser(argparse.ArgumentParser):
    """A sub-command also takes the global options after its name (`run f --log-level DEBUG`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("epilog", EXIT_CODES)
        super().__init__(*args, **kwargs)
        # SUPPRESS: given here it overrides the global option, not given it leaves the global one
        _log_options(self, argparse.SUPPRESS, argparse.SUPPRESS)


def _timeout_option(parser: argparse.ArgumentParser) -> None:
    from engine.clients import CLUSTER_CHECK_TIMEOUT_S

    parser.add_argument("--timeout", type=float, default=CLUSTER_CHECK_TIMEOUT_S, metavar="SECONDS",
                        help=f"give up on a cluster that does not answer within this time (default "
                             f"{CLUSTER_CHECK_TIMEOUT_S:.0f})")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mirror-engine", description="Kafka cluster-to-cluster replication (MM2 compatible)",
                                   epilog=EXIT_CODES)
    root.add_argument("--version", action=VersionAction,
                      help="print the engine's, librdkafka's and the compiled fast path's versions, and exit")
    _log_options(root, os.environ.get("MIRROR_ENGINE_LOG_LEVEL", "INFO").upper(),
                 os.environ.get("MIRROR_ENGINE_LOG_FORMAT") or "text")
    commands = root.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    run = commands.add_parser("run", help="replicate every enabled flow of an mm2.properties")
    run.add_argument("config", nargs="?", default=None, help="path to mm2.properties")
    run.add_argument("--metrics-listen", default=None, metavar="HOST:PORT",
                     help="Prometheus endpoint (default: mirror.engine.metrics.listen or 127.0.0.1:9464; '' turns it off)")
    run.add_argument("--loop", choices=("c", "python"), default=None,
                     help="the workers' relay loop (default: mirror.engine.loop or c): c runs on librdkafka's "
                          "C API, python on confluent-kafka's Python API, the benchmarks' baseline")
    run.add_argument("--clusters", nargs="+", default=None, metavar="ALIAS",
                     help="serve only the flows (and heartbeats) into these target clusters, as MM2's driver does")
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check-config", help="print the resolved clusters and flows (secrets hidden)",
        epilog="exit codes: 0 the file is good, 1 it has keys neither MM2 nor mirror-engine knows (each named "
               "with the key it likely meant; --lenient accepts them, as MM2 and `run` do), 2 it is refused (bad "
               "input)")
    check.add_argument("config", help="path to mm2.properties")
    check.add_argument("--lenient", action="store_true",
                       help="accept unknown keys (they are still listed among the remarks)")
    check.set_defaults(handler=_check_config)

    sandbox = commands.add_parser("sandbox", help="local Kafka KRaft clusters")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    up = sandbox_commands.add_parser("up", help="start clusters and print their bootstrap servers")
    up.add_argument("--clusters", default="A,B", help="comma-separated names (default A,B)")
    up.add_argument("--nodes", type=int, default=1, help="nodes per cluster, 1 to 3")
    up.set_defaults(handler=_sandbox_up)
    down = sandbox_commands.add_parser("down", help="stop clusters and remove their data")
    down.add_argument("--clusters", default="", help="names (default: every sandbox cluster)")
    down.set_defaults(handler=_sandbox_down)

    for name, help_text, source_help, target_help in (
        ("failover", "move a consumer group's offsets to the replica cluster", "source cluster alias",
         "target cluster alias"),
        ("failback", "move a failed-over consumer group back to its home cluster", "cluster the group is on now",
         "cluster it goes back to"),
    ):
        move = commands.add_parser(name, help=help_text)
        move.add_argument("config", help="path to mm2.properties")
        move.add_argument("--group", required=True)
        move.add_argument("--from", dest="source", required=True, help=source_help)
        move.add_argument("--to", dest="target", required=True, help=target_help)
        move.add_argument("--dry-run", action="store_true", help="print the table, change nothing")
        _timeout_option(move)
        move.set_defaults(handler=_move_group)

    cut = commands.add_parser("cutover", help="finish a migration: wait for lag 0, move every group, say what to switch")
    cut.add_argument("config", help="path to mm2.properties")
    cut.add_argument("--from", dest="source", required=True, metavar="OLD", help="cluster migrated from")
    cut.add_argument("--to", dest="target", required=True, metavar="NEW", help="cluster migrated to")
    cut.add_argument("--groups", default=None, help="groups to move (regex list; default: the flow's groups)")
    cut.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for lag 0")
    cut.set_defaults(handler=_cutover)

    audit = commands.add_parser("audit", help="check that every source record sits on the target unchanged",
                                epilog="exit codes: 0 every record is on the target unchanged, 1 not (what is missing, "
                                       "changed or duplicated is listed), 2 could not run (bad input, a cluster that "
                                       "does not answer or refuses us)")
    audit.add_argument("config", help="path to mm2.properties")
    audit.add_argument("--flow", default=None, help="one flow, e.g. A->B (default: every enabled flow)")
    _timeout_option(audit)
    audit.set_defaults(handler=_audit)

    acls = commands.add_parser("acls", help="print the ACLs the engine needs on each cluster, and kafka-acls.sh commands")
    acls.add_argument("config", help="path to mm2.properties")
    acls.add_argument("--principal", default=None, metavar="User:NAME",
                      help="the engine's principal (default: User:<sasl.username> of each cluster, else "
                           "User:mirror-engine)")
    acls.add_argument("--for", dest="command_for", choices=("run", "audit"), default="run",
                      help="the command whose ACLs to print (default: run)")
    acls.set_defaults(handler=_acls)

    skip = commands.add_parser("skip", help="leave records out of a stopped partition: store progress past them")
    skip.add_argument("config", help="path to mm2.properties")
    skip.add_argument("--flow", required=True, help="e.g. A->B")
    skip.add_argument("--topic", required=True, help="source topic")
    skip.add_argument("--partition", type=int, required=True)
    skip.add_argument("--past", type=int, required=True, metavar="OFFSET",
                      help="the last source offset to leave out; copying continues after it")
    _timeout_option(skip)
    skip.set_defaults(handler=_skip)

    status = commands.add_parser("status", help="one screen about a running engine: flows, lag, throughput, "
                                                "stopped partitions, workers, heartbeats")
    status.add_argument("config", nargs="?", default=None,
                        help="mm2.properties of the running engine: its mirror.engine.metrics.listen is asked")
    status.add_argument("--url", default=None, help="the engine's endpoint (default: from the config file, else "
                                                    "http://127.0.0.1:9464)")
    status.set_defaults(handler=_status)

    demo = commands.add_parser("demo", help="two local clusters, sample data, replicate, report")
    demo.add_argument("--records", type=int, default=200_000, help="records per topic")
    demo.set_defaults(handler=_demo)

    from engine.bench.command import add_arguments as bench_arguments

    bench = commands.add_parser("bench", help="end-to-end benchmark: mirror-engine vs Java MM2 vs the ceiling")
    bench_arguments(bench)
    bench.set_defaults(handler=_bench)
    return root


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka import KafkaException

    from engine.audit.flow import AuditRefused
    from engine.clients import ClusterUnreachable, Interrupted
    from engine.config.values import ConfigError
    from engine.coordinator.config_sync import ConfigSyncError
    from engine.coordinator.topics import TopicCreationError
    from engine.coordinator.topology import TopologyError
    from engine.offsets.failover import FailoverError
    from engine.logs import setup_logging
    from engine.sandbox import SandboxError
    from engine.worker.progress import ProgressError

    command_line = parser()
    args = command_line.parse_args(argv)
    if args.command == "run":
        _config_after_clusters(command_line, args)
    os.environ["MIRROR_ENGINE_LOG_FORMAT"] = args.log_format  # read by setup_logging, here and in the workers
    setup_logging(args.log_level)
    os.environ["MIRROR_ENGINE_LOG_LEVEL"] = args.log_level
    try:
        return args.handler(args)
    except (CliError, ConfigError, SandboxError, TopicCreationError, ClusterUnreachable, TopologyError,
            FailoverError, ProgressError, ConfigSyncError, AuditRefused) as error:
        return _fatal(args, str(error))
    except KafkaException as error:
        # a request failed after the command's clusters answered (one went away meanwhile)
        return _fatal(args, f"a Kafka request failed: {error.args[0].str()}")
    except (KeyboardInterrupt, Interrupted):
        return 130
    except BrokenPipeError:
        # the reader went away (`mirror-engine acls f | head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _fatal(args: argparse.Namespace, message: str) -> int:
    """The one line that ends a command that could not run: in the log's format, exit 2."""
    from engine.security.secrets import redact

    if args.log_format == "json":
        import logging

        logging.getLogger("engine").error("mirror-engine: error: %s", message)
    else:
        print(redact(f"mirror-engine: error: {message}"), file=sys.stderr)
    return 2


def _config_after_clusters(command_line: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """MM2's driver reads `--clusters B C` up to the next option, so `run --clusters B mm2.properties`
    would take the file for a cluster name: a last name that is a file is the file."""
    if args.config is None and args.clusters and len(args.clusters) > 1 and os.path.isfile(args.clusters[-1]):
        args.config = args.clusters.pop()
    if args.config is None:
        command_line.error("run: the path to mm2.properties is missing")


if __name__ == "__main__":
    sys.exit(main())
