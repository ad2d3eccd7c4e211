"""The JVM artifacts the project runs, from Maven Central: Kafka's broker, Spark's Kafka connector, a local file system.

`make setup` fetches each set with Maven into ``<jars_dir>/<name>-<version>/`` (a cache keyed by version, shared
by checkouts; see ``devstack/jars.py``); a finished set holds a ``.complete`` marker. Code that runs them asks
:func:`cached_jars` for the files, and gets an error that says what to run when they are missing.

Versions:
- Apache Kafka 4.1.2 (KRaft, Java 17): the local stack's broker; docker-compose.yml runs the same version.
- hadoop-bare-naked-local-fs 0.1.0 (com.globalmentor, Apache-2.0): Hadoop's LocalFileSystem that sets file modes
  with java.nio instead of forking `chmod` (see streaming/job.py, LOCAL_FS_CLASS).
- Spark's connector must match pyspark's version exactly: it is read from the installed pyspark's metadata. Maven
  Central has no connector for pyspark 4.3.0 (checked 2026-11-25), so pyspark is pinned to 4.2.0.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tone.errors import ToneError

KAFKA_VERSION: Final = "4.1.2"
LOG4J_VERSION: Final = "2.25.3"
LOCAL_FS_VERSION: Final = "0.1.0"
COMPLETE: Final = ".complete"


@dataclass(frozen=True)
class JarSet:
    """Maven coordinates fetched together (with their runtime dependencies, less ``only`` when it is set)."""

    name: str
    version: str
    coordinates: tuple[str, ...]
    # When set, keep only these artifact ids (the rest is on the classpath already, e.g. pyspark's own jars).
    only: tuple[str, ...] = ()

    @property
    def dirname(self) -> str:
        """The directory the set lives in under the jar cache."""
        return f"{self.name}-{self.version}"


def kafka_broker() -> JarSet:
    """Apache Kafka's broker (``kafka.Kafka``), its storage tool, the admin tools, and log4j2 behind slf4j."""
    return JarSet(
        "kafka",
        KAFKA_VERSION,
        (
            f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
            f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}",
            f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
        ),
    )


def pyspark_version() -> str:
    """The installed pyspark's version, read without importing pyspark."""
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        msg = 'pyspark is not installed: pip install -e ".[stream]"'
        raise ToneError(msg) from None


def spark_kafka_connector() -> JarSet:
    """Spark's Kafka source and sink for the installed pyspark: the four jars pyspark does not ship."""
    version = pyspark_version()
    return JarSet(
        "spark-sql-kafka",
        version,
        (f"org.apache.spark:spark-sql-kafka-0-10_2.13:{version}",),
        only=("spark-sql-kafka-0-10_2.13", "spark-token-provider-kafka-0-10_2.13", "kafka-clients", "commons-pool2"),
    )


def local_filesystem() -> JarSet:
    """Hadoop's local file system without child processes (BareLocalFileSystem); Hadoop itself is pyspark's."""
    return JarSet(
        "hadoop-bare-naked-local-fs",
        LOCAL_FS_VERSION,
        (f"com.globalmentor:hadoop-bare-naked-local-fs:{LOCAL_FS_VERSION}",),
        only=("hadoop-bare-naked-local-fs",),
    )


def spark_kafka_package() -> str:
    """The connector as a ``spark.jars.packages`` coordinate, for machines that reach Maven Central at run time."""
    return spark_kafka_connector().coordinates[0]


def cached_jars(jars_dir: Path, jars: JarSet) -> list[Path]:
    """The jar files of a fetched set; raises ToneError naming the command that fetches it."""
    directory = Path(jars_dir) / jars.dirname
    if not (directory / COMPLETE).is_file():
        msg = (
            f"{jars.name} {jars.version} jars are not in {directory}: fetch them with `make setup` "
            f"(or: python -m devstack.jars); it needs mvn and Maven Central"
        )
        raise ToneError(msg)
    return sorted(directory.glob("*.jar"))
