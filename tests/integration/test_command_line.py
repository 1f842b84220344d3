"""Every sub-command that talks to clusters, against one that is closed, one that never answers and
one that refuses us: one line naming the cluster and its keys, exit 2, never a traceback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading

import pytest

from engine.sandbox.cluster import free_ports
from tests.helpers import wait_for
from tests.integration.conftest import GIVEN_SECRETS
from tests.integration.kafka_io import mm2_properties

WRONG_PASSWORD = "not-the-password"
GIVEN_SECRETS.add(WRONG_PASSWORD)

COMMANDS = {
    "audit": ["audit"],
    "failover": ["failover", "--group", "orders", "--from", "A", "--to", "B"],
    "failback": ["failback", "--group", "orders", "--from", "B", "--to", "A"],
    "cutover": ["cutover", "--from", "A", "--to", "B"],
    "skip": ["skip", "--flow", "A->B", "--topic", "orders", "--partition", "0", "--past", "5"],
}


class SilentListener:
    """Accepts connections and never answers; counts them."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.accepted.append(self.socket.accept()[0])
            except OSError:
                return

    def close(self):
        self.socket.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent_listener():
    listener = SilentListener()
    yield listener
    listener.close()


def engine_command(args: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def start_all(config_file, extra: list[str]) -> dict[str, subprocess.Popen]:
    """Every command at once (each waits for its --timeout): the test takes one timeout, not five."""
    return {name: subprocess.Popen([sys.executable, "-m", "engine", *args[:1], str(config_file), *args[1:], *extra],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, args in COMMANDS.items()}


def assert_one_named_line(name: str, process: subprocess.Popen, cluster: str, *expected: str):
    stdout, stderr = process.communicate(timeout=60)
    lines = stderr.splitlines()
    assert process.returncode == 2, (name, stderr)
    assert "Traceback" not in stderr, (name, stderr)
    errors = [line for line in lines if line.startswith("mirror-engine: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"mirror-engine: error: cluster {cluster} ("), (name, stderr)
    assert all(fragment in errors[0] for fragment in expected), (name, errors[0])
    assert len(lines) <= 4, (name, stderr)  # librdkafka's repeated connection lines: once each


@pytest.mark.parametrize("kind", ["closed", "silent"])
def test_every_command_names_a_cluster_that_does_not_answer(kind, tmp_path, silent_listener):
    port = silent_listener.port if kind == "silent" else free_ports(1)[0]
    config_file = tmp_path / "mm2.properties"
    config_file.write_text(
        f"clusters = A, B\nA.bootstrap.servers = 127.0.0.1:{port}\nB.bootstrap.servers = 127.0.0.1:{port}\n"
        "A->B.enabled = true\n")
    for name, process in start_all(config_file, ["--timeout", "3"]).items():
        first = "B" if name == "skip" else "A"  # skip needs the target alone; the others check A first
        assert_one_named_line(name, process, first, "did not answer within 3s",
                              f"(config key: {first}.bootstrap.servers)")


def test_every_command_names_a_cluster_that_refuses_us(source_cluster, secured_target, tmp_path):
    config_file = tmp_path / "mm2.properties"
    config_file.write_text(mm2_properties(source_cluster, secured_target, {
        "B.bootstrap.servers": secured_target.cluster.sasl_bootstrap_servers,
        "B.security.protocol": "SASL_PLAINTEXT", "B.sasl.mechanism": "SCRAM-SHA-256",
        "B.sasl.username": "admin", "B.sasl.password": WRONG_PASSWORD,
    }))
    for name, process in start_all(config_file, ["--timeout", "20"]).items():
        assert_one_named_line(name, process, "B", "SASL authentication failed",
                              "(config keys: B.sasl.jaas.config, B.sasl.mechanism)")


def test_run_stops_at_once_when_asked_during_its_cluster_check(tmp_path, silent_listener):
    config_file = tmp_path / "mm2.properties"
    config_file.write_text(f"clusters = A, B\nA.bootstrap.servers = 127.0.0.1:{silent_listener.port}\n"
                           f"B.bootstrap.servers = 127.0.0.1:{silent_listener.port}\nA->B.enabled = true\n")
    for sig in (signal.SIGTERM, signal.SIGINT):
        before = len(silent_listener.accepted)
        process = subprocess.Popen([sys.executable, "-m", "engine", "run", str(config_file), "--metrics-listen", ""],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(silent_listener.accepted) > before, 30, "the engine's first connection attempt")
            process.send_signal(sig)
            _, stderr = process.communicate(timeout=5)  # the check alone would wait 15 s
        finally:
            process.kill()
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr


def test_json_logs_end_with_a_json_error_line(tmp_path):
    config_file = tmp_path / "mm2.properties"
    port = free_ports(1)[0]
    config_file.write_text(f"clusters = A, B\nA.bootstrap.servers = 127.0.0.1:{port}\n"
                           f"B.bootstrap.servers = 127.0.0.1:{port}\nA->B.enabled = true\n")
    done = engine_command(["audit", str(config_file), "--timeout", "1", "--log-format", "json"])
    documents = [json.loads(line) for line in done.stderr.splitlines()]
    assert done.returncode == 2
    assert documents[-1]["level"] == "ERROR"
    assert documents[-1]["message"].startswith("mirror-engine: error: cluster A (")


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    config_file = tmp_path / "mm2.properties"
    config_file.write_text("clusters = A, B\nA.bootstrap.servers = 127.0.0.1:1\nB.bootstrap.servers = 127.0.0.1:2\n"
                           "A->B.enabled = true\n")
    process = subprocess.Popen([sys.executable, "-m", "engine", "acls", str(config_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # as `| head` does once it has its lines
    with process.stderr:
        stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141, stderr
    assert stderr == ""


def test_status_of_a_server_that_is_not_the_engine_is_one_line(tmp_path):
    import http.server

    class NotTheEngine(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "UP"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotTheEngine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        done = engine_command(["status", "--url", url])
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"mirror-engine: error: {url}/status answered, but not as mirror-engine "
                                        f"does: is it the engine's endpoint (mirror.engine.metrics.listen)?"]
