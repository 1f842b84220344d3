"""check-config: the resolved file, secrets hidden, and the table of deviations from MM2."""

from __future__ import annotations

from engine.config.loading import from_properties
from engine.config.report import DEVIATIONS, report


def test_report_shows_resolved_settings_hides_secrets_and_marks_what_the_file_set():
    config = from_properties({
        "clusters": "A, B", "A.bootstrap.servers": "127.0.0.1:1", "B.bootstrap.servers": "127.0.0.1:2",
        "A->B.enabled": "true", "A->B.topics": "orders.*", "tasks.max": "3",
        "A.security.protocol": "SASL_SSL", "A.sasl.mechanism": "PLAIN",
        "A.sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" '
                              'password="report-secret-pw";',
        "B.producer.linger.ms": "20", "A.consumer.isolation.level": "read_uncommitted",
        "A->B.record.filter.key.prefix": "eu-", "frobnicate": "1",
    }, quiet=True)
    text = report(config)
    assert "report-secret-pw" not in text
    assert "    sasl.password = [hidden]\n    sasl.username = u\n    security.protocol = SASL_SSL" in text
    assert "    topics = orders.*; topics.exclude = " in text
    assert "    record filter: key_prefixes = eu-\n" in text
    assert "    target producer overrides (librdkafka):\n      linger.ms = 20" in text
    assert "| A->B | tasks.max | 1 | 3 (set by tasks.max) |" in text
    assert "| A->B | source isolation.level | read_uncommitted (aborted transactions are copied) | read_uncommitted " \
           "(set by A.consumer.isolation.level) |" in text
    assert "| A->B | offset.flush.interval.ms | 60000 | 5000 | " in text
    assert text.count("| A->B |") == len(DEVIATIONS)
    assert "  frobnicate is not a key MM2 or mirror-engine knows (ignored, as MM2 ignores it)" in text


def test_report_says_whether_the_instances_share_the_partitions():
    from engine.config.loading import from_properties
    from engine.config.report import report

    base = {"clusters": "A, B", "A.bootstrap.servers": "a:9092", "B.bootstrap.servers": "b:9092",
            "A->B.enabled": "true"}
    assert "scale-out: off (mirror.engine.group.id not set)" in report(from_properties(base, quiet=True))
    shared = report(from_properties({**base, "mirror.engine.group.id": "mirrors"}, quiet=True))
    assert "scale-out: the instances of group mirrors share the partitions (groups on cluster B; session " \
           "timeout 10000 ms)" in shared


def test_report_says_which_loop_copies_each_flow_and_why():
    base = {"clusters": "A, B", "A.bootstrap.servers": "a:9092", "B.bootstrap.servers": "b:9092",
            "A->B.enabled": "true", "B->A.enabled": "true", "B->A.record.filter.key.prefix": "eu-"}
    assert "  A->B:\n" in report(from_properties(base, quiet=True))
    assert "    loop = c (mirror.engine.loop = c)\n" in report(from_properties(base, quiet=True))
    text = report(from_properties({**base, "mirror.engine.loop": "batch"}, quiet=True))
    a_to_b, b_to_a = text.split("  A->B:\n")[1].split("  B->A:\n")
    assert "    loop = batch (mirror.engine.loop = batch)\n" in a_to_b
    assert "    loop = c (record loop: record.filter set)\n" in b_to_a


def test_the_deviations_table_has_one_row_per_setting_and_value_not_per_flow():
    config = from_properties({
        "clusters": "A, B, C", "A.bootstrap.servers": "127.0.0.1:1", "B.bootstrap.servers": "127.0.0.1:2",
        "C.bootstrap.servers": "127.0.0.1:3", "A->B.enabled": "true", "A->C.enabled": "true", "B->C.enabled": "true",
        "A->C.tasks.max": "4", "B->C.mirror.engine.resume.from.target.enabled": "false",
    }, quiet=True)
    rows = [line for line in report(config).splitlines() if line.startswith("| ") and "| setting |" not in line]
    assert "| every flow | offset.flush.interval.ms | 60000 | 5000 | a crash copies at most a few seconds of records " \
           "again |" in rows
    assert [r.split(" | ")[:4] for r in rows if "| tasks.max |" in r] == [
        ["| A->B, B->C", "tasks.max", "1", "the CPUs this process may use"],
        ["| A->C", "tasks.max", "1", "4 (set by A->C.tasks.max)"]]
    assert [r.split(" | ")[:4] for r in rows if "| restart after a crash |" in r] == [
        ["| A->B, A->C", "restart after a crash", "copies again what the target acknowledged after the last stored "
         "offsets", "resumes after the copies the target already holds"],
        ["| B->C", "restart after a crash", "copies again what the target acknowledged after the last stored offsets",
         "as MM2 (set by B->C.mirror.engine.resume.from.target.enabled)"]]
    assert len(rows) == len(DEVIATIONS) + 2


def test_each_flow_shows_the_settings_a_review_checks_first():
    config = from_properties({
        "clusters": "A, B", "A.bootstrap.servers": "127.0.0.1:1", "B.bootstrap.servers": "127.0.0.1:2",
        "A->B.enabled": "true", "replication.factor": "3", "checkpoints.topic.replication.factor": "1",
        "A->B.sync.topic.acls.enabled": "false", "emit.checkpoints.interval.seconds": "20",
        "sync.group.offsets.enabled": "true", "A->B.emit.heartbeats.interval.seconds": "5",
    }, quiet=True)
    text = report(config)
    assert ("    replication factors: remote topics 3, progress 3, offset syncs 3, checkpoints 1, heartbeats 3\n"
            "    heartbeats: every 5 s into B; heartbeats topics copied: on\n"
            "    offset syncs: on; checkpoints: every 20 s; group offsets synced: every 60 s\n"
            "    topic configs synced: every 600 s; topic ACLs synced: off; new topics looked for: every 600 s; "
            "progress stored every 5000 ms\n") in text
