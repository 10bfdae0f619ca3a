"""DRIFTLINE_KAFKA_CONFIG's security settings reach the worker's Faust (aiokafka) client as they reach the
confluent-kafka clients. The embedded broker cannot serve TLS or SASL in this build (docs/operations.md), so the
mapping is checked here, through Faust's own translation into aiokafka's arguments."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from driftline.schemas.settings import Settings, SettingsError
from driftline.streams.app import create_app
from driftline.streams.kafka_security import faust_security


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "client.pem", folder / "client.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def aiokafka_arguments(options: dict[str, str]) -> dict[str, object]:
    return credentials_to_aiokafka_auth(faust_security(options)["broker_credentials"])


def test_plaintext_needs_no_credentials():
    assert faust_security({}) == {} == faust_security({"security.protocol": "plaintext", "linger.ms": "5"})


def test_sasl_over_tls_with_scram_is_the_same_user_mechanism_and_verified_tls(tmp_path):
    ca, _ = self_signed(tmp_path)
    given = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc-driftline",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(ca),
    }
    arguments = aiokafka_arguments(given)
    assert {k: arguments[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username")} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc-driftline",
    }
    assert arguments["sasl_plain_password"] == "s3cret"
    context = arguments["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "localhost"),),)]


def test_sasl_plain_without_tls_and_confluent_clouds_plural_key():
    arguments = aiokafka_arguments(
        {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN", "sasl.username": "k", "sasl.password": "p"}
    )
    assert (arguments["security_protocol"], arguments["sasl_mechanism"], arguments["ssl_context"]) == (
        "SASL_PLAINTEXT",
        "PLAIN",
        None,
    )


def test_mutual_tls_loads_the_client_certificate_and_the_checks_can_be_turned_off(tmp_path):
    cert, key = self_signed(tmp_path)
    mutual = {"security.protocol": "SSL", "ssl.certificate.location": str(cert), "ssl.key.location": str(key)}
    arguments = aiokafka_arguments(mutual)
    assert arguments["security_protocol"] == "SSL" and isinstance(arguments["ssl_context"], ssl.SSLContext)
    no_host_check = aiokafka_arguments({**mutual, "ssl.endpoint.identification.algorithm": "none"})
    assert no_host_check["ssl_context"].check_hostname is False
    unverified = aiokafka_arguments({"security.protocol": "SSL", "enable.ssl.certificate.verification": "false"})
    assert unverified["ssl_context"].verify_mode == ssl.CERT_NONE


def test_kerberos_keeps_its_service_name():
    arguments = aiokafka_arguments(
        {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI", "sasl.kerberos.service.name": "kfk"}
    )
    assert (arguments["sasl_mechanism"], arguments["sasl_kerberos_service_name"]) == ("GSSAPI", "kfk")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"},
            "sasl.mechanism 'OAUTHBEARER' cannot reach the stream worker's Faust client (aiokafka); use one of PLAIN",
        ),
        (
            {"security.protocol": "SSL", "ssl.keystore.location": "/k.p12", "ssl.cipher.suites": "x"},
            "ssl.cipher.suites, ssl.keystore.location cannot reach the stream worker's Faust client (aiokafka); it",
        ),
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}, "sasl.mechanism PLAIN needs sasl.username"),
        ({"security.protocol": "TLS"}, "security.protocol 'TLS' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT"),
        ({"security.protocol": "SSL", "ssl.key.location": "/k"}, "ssl.certificate.location and ssl.key.location"),
    ],
)
def test_a_setting_faust_cannot_take_is_refused_by_name(options, message):
    with pytest.raises(SettingsError) as refused:
        faust_security(options)
    assert str(refused.value).startswith(f"DRIFTLINE_KAFKA_CONFIG: {message}")


def test_the_worker_app_gets_the_credentials_of_driftline_kafka_config(tmp_path):
    settings = Settings(
        home=str(tmp_path),
        kafka_config='{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256", '
        '"sasl.username": "u", "sasl.password": "p"}',
    )
    credentials = create_app(settings).conf.broker_credentials
    assert (type(credentials).__name__, credentials.username, credentials.mechanism.value) == (
        "SASLCredentials",
        "u",
        "SCRAM-SHA-256",
    )
