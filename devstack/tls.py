"""Certificates and passwords for the secure local stack (TONE_STACK_SECURE).

A private CA, a server certificate
for 127.0.0.1/localhost, and random passwords, written once under ``<stack dir>/secrets`` (files readable by the
owner only). Kafka reads the PEM files directly (``ssl.keystore.type=PEM``); Redis and the clients take the CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

KAFKA_ADMIN = "admin"  # the broker's own (inter-broker) SCRAM user
KAFKA_USER = "tone"  # the project's clients


@dataclass(frozen=True)
class Secrets:
    """Paths of the secure stack's files."""

    directory: Path

    @property
    def ca(self) -> Path:
        """The CA certificate clients trust."""
        return self.directory / "ca.pem"

    @property
    def server_cert(self) -> Path:
        """The server certificate (SAN 127.0.0.1, localhost)."""
        return self.directory / "server-cert.pem"

    @property
    def server_key(self) -> Path:
        """The server's private key (PKCS#8, unencrypted; the file is the owner's alone)."""
        return self.directory / "server-key.pem"

    @property
    def kafka_keystore(self) -> Path:
        """Key, certificate and CA in one PEM file: Kafka's PEM key store."""
        return self.directory / "kafka-keystore.pem"

    def password_file(self, name: str) -> Path:
        """Where a generated password lives."""
        return self.directory / f"{name}.password"

    def password(self, name: str) -> str:
        """A generated password."""
        return self.password_file(name).read_text().strip()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def ensure_secrets(directory: Path) -> Secrets:
    """Create the CA, the server certificate and the passwords unless they exist (idempotent)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    s = Secrets(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name in (KAFKA_ADMIN, KAFKA_USER, "redis"):
        if not s.password_file(name).exists():
            _write_private(s.password_file(name), secrets.token_urlsafe(24).encode())
    if s.kafka_keystore.exists():
        return s

    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tweet-tone local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem, cert_pem = ca_cert.public_bytes(pem), cert.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    s.ca.write_bytes(ca_pem)
    s.server_cert.write_bytes(cert_pem)
    _write_private(s.server_key, key_pem)
    _write_private(s.kafka_keystore, key_pem + cert_pem + ca_pem)
    return s
