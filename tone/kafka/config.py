"""One Kafka connection model, rendered in each client's dialect, and the one table of producer defaults.

Option names differ per client: kafka-python takes ``security_protocol``, librdkafka ``security.protocol``, and
Spark's Kafka source the Java client's names with a ``kafka.`` prefix, credentials inside ``sasl.jaas.config``.
Everything that connects is described once here and rendered by :meth:`KafkaConnection.kafka_python`,
:meth:`KafkaConnection.librdkafka` and :meth:`KafkaConnection.spark_options`; :meth:`KafkaConnection.from_options`
reads Spark-style options back (the project's own Spark source takes the same options as Spark's).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tone.settings import Settings

# Producer defaults in Kafka's own (Java / librdkafka) names, for every producer of the project.
# - Idempotent: a send retried after a lost acknowledgement is not written twice, and order per partition holds
#   with up to 5 requests in flight.
# - A 5 ms linger fills batches at replay rates; gzip ships with every client (lz4/zstd would need extra wheels).
# - Batches of up to 1 MiB: measured on the workers' hot path (2 cores), where the scored topic takes every tweet.
# - A record not acknowledged within the delivery timeout fails (TONE_KAFKA_DELIVERY_TIMEOUT_S, 60 s by default;
#   flush then says how many): an outage is reported, not hidden.
PRODUCER_DEFAULTS: Final[Mapping[str, Any]] = {
    "enable.idempotence": True,
    "acks": "all",
    "max.in.flight.requests.per.connection": 5,
    "linger.ms": 5,
    "batch.size": 1024 * 1024,
    "compression.type": "gzip",
    "delivery.timeout.ms": 60_000,
}


def producer_overrides(settings: Settings) -> dict[str, Any]:
    """What the settings change in the producer defaults (librdkafka names)."""
    return {"delivery.timeout.ms": round(settings.kafka_delivery_timeout_s * 1000)}


# librdkafka only: its local queue holds at most this many records before produce() pushes back.
LIBRDKAFKA_PRODUCER_EXTRAS: Final[Mapping[str, Any]] = {"queue.buffering.max.messages": 1_000_000}

_JAAS_MODULES: Final = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
_JAAS_VALUE: Final = r'{name}="((?:[^"\\]|\\.)*)"'


def kafka_python_names(config: Mapping[str, Any]) -> dict[str, Any]:
    """Kafka's dotted option names as kafka-python's keyword arguments (``linger.ms`` -> ``linger_ms``)."""
    return {k.replace(".", "_"): v for k, v in config.items()}


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _jaas_value(jaas: str, name: str) -> str | None:
    match = re.search(_JAAS_VALUE.format(name=name), jaas)
    return re.sub(r"\\(.)", r"\1", match.group(1)) if match else None


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate: everything a client needs to connect, once."""

    bootstrap_servers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_file: str | None = None  # CA (PEM) that signed the brokers' certificates; None: the system CAs

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        """The connection the settings describe (``TONE_KAFKA_*``)."""
        password = settings.kafka_sasl_password
        return cls(
            tuple(settings.kafka_bootstrap_servers.split(",")),
            settings.kafka_security_protocol,
            settings.kafka_sasl_mechanism,
            settings.kafka_sasl_username,
            password.get_secret_value() if password is not None else None,
            str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None,
        )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> KafkaConnection:
        """Read Spark-style ``kafka.*`` options (keys in any case), as Spark's own Kafka source takes them."""
        lower = {k.lower(): v for k, v in options.items()}
        bootstrap = lower.get("kafka.bootstrap.servers", "")
        servers = tuple(s.strip() for s in bootstrap.split(",") if s.strip())
        if not servers:
            msg = "a Kafka source needs option kafka.bootstrap.servers=host:port[,host:port...]"
            raise ValueError(msg)
        jaas = lower.get("kafka.sasl.jaas.config", "")
        pem = lower.get("kafka.ssl.truststore.type", "").upper() == "PEM"
        return cls(
            servers,
            lower.get("kafka.security.protocol", "PLAINTEXT"),
            lower.get("kafka.sasl.mechanism"),
            _jaas_value(jaas, "username"),
            _jaas_value(jaas, "password"),
            lower.get("kafka.ssl.truststore.location") if pem else None,
        )

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers as one comma-separated string."""
        return ",".join(self.bootstrap_servers)

    def kafka_python(self) -> dict[str, Any]:
        """kafka-python's keyword arguments."""
        config: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = self.sasl_password
        if self.ssl_ca_file:
            config["ssl_cafile"] = self.ssl_ca_file
        return config

    def librdkafka(self) -> dict[str, Any]:
        """Librdkafka's (confluent-kafka's) configuration."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password
        if self.ssl_ca_file:
            config["ssl.ca.location"] = self.ssl_ca_file
        return config

    def spark_options(self) -> dict[str, str]:
        """Spark's Kafka source options (the Java client's names, prefixed ``kafka.``)."""
        options = {"kafka.bootstrap.servers": self.bootstrap, "kafka.security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            module = _JAAS_MODULES[self.sasl_mechanism]
            user, password = _jaas_quote(self.sasl_username or ""), _jaas_quote(self.sasl_password or "")
            options["kafka.sasl.mechanism"] = self.sasl_mechanism
            options["kafka.sasl.jaas.config"] = f'{module} required username="{user}" password="{password}";'
        if self.ssl_ca_file:
            # The Java client reads a PEM trust store directly (no keytool import needed).
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.location"] = self.ssl_ca_file
        return options

    def cache_key(self) -> str:
        """A string that differs between connections (for per-process client caches); holds no secret."""
        secret = hashlib.sha256((self.sasl_password or "").encode()).hexdigest()[:16]
        return f"{self.bootstrap}|{self.security_protocol}|{self.sasl_mechanism}|{self.sasl_username}|{secret}"
