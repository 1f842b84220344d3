"""Apache Kafka jars for the sandbox, fetched with Maven into a git-ignored cache.

One version for every Kafka artifact. The jar folder is filled once; later calls find its
completion marker and touch neither Maven nor the network, so the sandbox works offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

KAFKA_VERSION = "4.3.1"
SCALA_VERSION = "2.13"
# kafka_2.13 pulls slf4j-api 1.7 and no binding; the broker logs through slf4j, so bring 2.x + log4j2's.
LOG4J_VERSION = "2.25.4"
SLF4J_VERSION = "2.0.17"

# (groupId, artifactId, version); MM2's own jars are MIRROR_MAKER_ARTIFACTS below.
ARTIFACTS: tuple[tuple[str, str, str], ...] = (
    ("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
    ("org.apache.kafka", "kafka-tools", KAFKA_VERSION),
    ("org.slf4j", "slf4j-api", SLF4J_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j2-impl", LOG4J_VERSION),
    ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
)


class SandboxError(RuntimeError):
    """The sandbox could not fetch, start or stop something; the message says what."""


def cache_root() -> Path:
    """The project's cache folder (git-ignored); MIRROR_ENGINE_CACHE moves it."""
    configured = os.environ.get("MIRROR_ENGINE_CACHE")
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parents[2] / ".cache"


_TOOL_PURPOSE = {
    "java": "Java 17+ runs the brokers",
    "mvn": "Maven fetches the Kafka jars",
    "keytool": "the JDK's keytool makes Java truststores and keystores for TLS tests",
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SandboxError(
            f"'{name}' was not found on PATH; the Kafka sandbox needs it ({_TOOL_PURPOSE.get(name, name)})"
        )
    return path


def _pom(artifacts: tuple[tuple[str, str, str], ...]) -> str:
    deps = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in artifacts
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mirror-engine</groupId><artifactId>kafka-sandbox</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


# MM2's client library (RemoteClusterUtils, MirrorClient): compatibility tests run it against our topics
MIRROR_CLIENT_ARTIFACTS: tuple[tuple[str, str, str], ...] = (
    ("org.apache.kafka", "connect-mirror-client", KAFKA_VERSION),
    ("org.slf4j", "slf4j-api", SLF4J_VERSION),
    ("org.slf4j", "slf4j-nop", SLF4J_VERSION),
)


# Java MirrorMaker 2 in dedicated mode (`org.apache.kafka.connect.mirror.MirrorMaker`), the
# benchmarks' reference; logging through log4j2 into a file, as the brokers do
MIRROR_MAKER_ARTIFACTS: tuple[tuple[str, str, str], ...] = (
    ("org.apache.kafka", "connect-mirror", KAFKA_VERSION),
    ("org.slf4j", "slf4j-api", SLF4J_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j2-impl", LOG4J_VERSION),
    ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
)


def kafka_libs(artifacts: tuple[tuple[str, str, str], ...] = ARTIFACTS, name: str = "libs") -> Path:
    """Returns the folder holding every jar of `artifacts`, fetching them on first use."""
    libs = cache_root() / f"kafka-{KAFKA_VERSION}" / name
    marker = libs / ".complete"
    wanted = _pom(artifacts)
    if marker.exists() and marker.read_text() == wanted:
        return libs
    mvn = require_tool("mvn")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=libs.parent) as work:
        staging = Path(work) / "libs"
        (Path(work) / "pom.xml").write_text(wanted)
        command = [
            mvn, "-B", "-q", "-f", str(Path(work) / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise SandboxError(f"Maven could not fetch Apache Kafka {KAFKA_VERSION}:\n{tail}")
        # slf4j 1.7 from Kafka's own poms would shadow the 2.x binding; keep one slf4j-api
        for stale in staging.glob("slf4j-api-1.*.jar"):
            stale.unlink()
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
    marker.write_text(wanted)
    return libs


def classpath() -> str:
    return str(kafka_libs() / "*")


def log4j2_file_config(log_file: Path, level: str = "INFO") -> str:
    """log4j2 properties that send every logger to one file and nothing to the console."""
    return f"""status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = FILE
"""
