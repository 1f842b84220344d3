"""The `mirror-engine` command line."""

from __future__ import annotations

import argparse
import os
import sys

from engine import commands
from engine.version import VersionAction

EXIT_CODES = "exit codes: 0 done, 2 could not run (bad input, a cluster that does not answer or refuses us)"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
    root = argparse.ArgumentParser(prog="mirror-engine",
                                   description="Kafka cluster-to-cluster replication (MM2 compatible)",
                                   epilog=EXIT_CODES)
    root.add_argument("--version", action=VersionAction,
                      help="print the engine's, librdkafka's and the compiled fast path's versions, and exit")
    _log_options(root, os.environ.get("MIRROR_ENGINE_LOG_LEVEL", "INFO").upper(),
                 os.environ.get("MIRROR_ENGINE_LOG_FORMAT") or "text")
    subcommands = root.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    run = subcommands.add_parser("run", help="replicate every enabled flow of an mm2.properties")
    run.add_argument("config", nargs="?", default=None, help="path to mm2.properties")
    run.add_argument("--metrics-listen", default=None, metavar="HOST:PORT",
                     help="Prometheus endpoint (default: mirror.engine.metrics.listen or 127.0.0.1:9464; "
                          "'' turns it off)")
    run.add_argument("--loop", choices=("c", "python", "batch"), default=None,
                     help="the workers' relay loop (default: mirror.engine.loop or c): c runs on librdkafka's "
                          "C API, python on confluent-kafka's Python API, the benchmarks' baseline, batch copies "
                          "record batches as bytes (docs/batch-relay.md)")
    run.add_argument("--clusters", nargs="+", default=None, metavar="ALIAS",
                     help="serve only the flows (and heartbeats) into these target clusters, as MM2's driver does")
    run.set_defaults(handler=commands.run)

    check = subcommands.add_parser(
        "check-config", help="print the resolved clusters and flows (secrets hidden)",
        epilog="exit codes: 0 the file is good, 1 it has keys neither MM2 nor mirror-engine knows (each named "
               "with the key it likely meant; --lenient accepts them, as MM2 and `run` do), 2 it is refused (bad "
               "input)")
    check.add_argument("config", help="path to mm2.properties")
    check.add_argument("--lenient", action="store_true",
                       help="accept unknown keys (they are still listed among the remarks)")
    check.set_defaults(handler=commands.check_config)

    sandbox = subcommands.add_parser("sandbox", help="local Kafka KRaft clusters")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    up = sandbox_commands.add_parser("up", help="start clusters and print their bootstrap servers")
    up.add_argument("--clusters", default="A,B", help="comma-separated names (default A,B)")
    up.add_argument("--nodes", type=int, default=1, help="nodes per cluster, 1 to 3")
    up.set_defaults(handler=commands.sandbox_up)
    down = sandbox_commands.add_parser("down", help="stop clusters and remove their data")
    down.add_argument("--clusters", default="", help="names (default: every sandbox cluster)")
    down.set_defaults(handler=commands.sandbox_down)

    for name, help_text, source_help, target_help in (
        ("failover", "move a consumer group's offsets to the replica cluster", "source cluster alias",
         "target cluster alias"),
        ("failback", "move a failed-over consumer group back to its home cluster", "cluster the group is on now",
         "cluster it goes back to"),
    ):
        move = subcommands.add_parser(name, help=help_text)
        move.add_argument("config", help="path to mm2.properties")
        move.add_argument("--group", required=True)
        move.add_argument("--from", dest="source", required=True, help=source_help)
        move.add_argument("--to", dest="target", required=True, help=target_help)
        move.add_argument("--dry-run", action="store_true", help="print the table, change nothing")
        _timeout_option(move)
        move.set_defaults(handler=commands.move_group)

    cut = subcommands.add_parser("cutover",
                                 help="finish a migration: wait for lag 0, move every group, say what to switch")
    cut.add_argument("config", help="path to mm2.properties")
    cut.add_argument("--from", dest="source", required=True, metavar="OLD", help="cluster migrated from")
    cut.add_argument("--to", dest="target", required=True, metavar="NEW", help="cluster migrated to")
    cut.add_argument("--groups", default=None, help="groups to move (regex list; default: the flow's groups)")
    cut.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for lag 0")
    cut.set_defaults(handler=commands.cutover)

    audit = subcommands.add_parser("audit", help="check that every source record sits on the target unchanged",
                                epilog="exit codes: 0 every record is on the target unchanged, 1 not (what is missing, "
                                       "changed or duplicated is listed), 2 could not run (bad input, a cluster that "
                                       "does not answer or refuses us)")
    audit.add_argument("config", help="path to mm2.properties")
    audit.add_argument("--flow", default=None, help="one flow, e.g. A->B (default: every enabled flow)")
    _timeout_option(audit)
    audit.set_defaults(handler=commands.audit)

    acls = subcommands.add_parser("acls",
                                  help="print the ACLs the engine needs on each cluster, and kafka-acls.sh commands")
    acls.add_argument("config", help="path to mm2.properties")
    acls.add_argument("--principal", default=None, metavar="User:NAME",
                      help="the engine's principal (default: User:<sasl.username> of each cluster, else "
                           "User:mirror-engine)")
    acls.add_argument("--for", dest="command_for", choices=("run", "audit"), default="run",
                      help="the command whose ACLs to print (default: run)")
    acls.set_defaults(handler=commands.acls)

    skip = subcommands.add_parser("skip", help="leave records out of a stopped partition: store progress past them")
    skip.add_argument("config", help="path to mm2.properties")
    skip.add_argument("--flow", required=True, help="e.g. A->B")
    skip.add_argument("--topic", required=True, help="source topic")
    skip.add_argument("--partition", type=int, required=True)
    skip.add_argument("--past", type=int, required=True, metavar="OFFSET",
                      help="the last source offset to leave out; copying continues after it")
    _timeout_option(skip)
    skip.set_defaults(handler=commands.skip)

    status = subcommands.add_parser("status", help="one screen about a running engine: flows, lag, throughput, "
                                                "stopped partitions, workers, heartbeats")
    status.add_argument("config", nargs="?", default=None,
                        help="mm2.properties of the running engine: its mirror.engine.metrics.listen is asked")
    status.add_argument("--url", default=None, help="the engine's endpoint (default: from the config file, else "
                                                    "http://127.0.0.1:9464)")
    status.set_defaults(handler=commands.status)

    demo = subcommands.add_parser("demo", help="two local clusters, sample data, replicate, report")
    demo.add_argument("--records", type=int, default=200_000, help="records per topic")
    demo.set_defaults(handler=commands.demo)

    from engine.bench.command import add_arguments as bench_arguments

    bench = subcommands.add_parser("bench", help="end-to-end benchmark: mirror-engine vs Java MM2 vs the ceiling")
    bench_arguments(bench)
    bench.set_defaults(handler=commands.bench)
    return root


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka import KafkaException

    from engine.audit.flow import AuditRefused
    from engine.clients import ClusterUnreachable, Interrupted
    from engine.config.values import ConfigError
    from engine.coordinator.config_sync import ConfigSyncError
    from engine.coordinator.topics import TopicCreationError
    from engine.coordinator.topology import TopologyError
    from engine.logs import setup_logging
    from engine.offsets.failover import FailoverError
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
    except (commands.CliError, ConfigError, SandboxError, TopicCreationError, ClusterUnreachable, TopologyError,
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
