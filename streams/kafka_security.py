"""The Kafka security settings of the confluent-kafka clients, for the worker's Faust (aiokafka) side too.

Every confluent-kafka client of driftline takes ``DRIFTLINE_KAFKA_CONFIG`` (or the ``driftline_kafka`` Airflow
Connection) as librdkafka settings. The stream worker's Faust app speaks to Kafka through aiokafka, which takes
the same things in another form; :func:`faust_security` turns the security settings into Faust's
``broker_credentials``, so one setting reaches every client of the worker:

============================================  ==================================================================
librdkafka                                    Faust / aiokafka
============================================  ==================================================================
``security.protocol``                         ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``
``sasl.mechanism`` (or ``sasl.mechanisms``)   ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``, ``GSSAPI``
``sasl.username``, ``sasl.password``          the SASL user and password
``sasl.kerberos.service.name``                GSSAPI's service name (the ticket comes from the usual cache)
``ssl.ca.location`` / ``ssl.ca.pem``          the CA the broker's certificate must chain to (file or folder / PEM)
``ssl.certificate.location``,                 the client's certificate and key (mutual TLS)
``ssl.key.location``, ``ssl.key.password``
``ssl.endpoint.identification.algorithm``     ``none`` turns the host name check off (librdkafka's default: on)
``enable.ssl.certificate.verification``       ``false`` turns certificate verification off
============================================  ==================================================================

A security setting that has no equivalent on the Faust side (``OAUTHBEARER``, a PKCS#12 keystore, an inline
client certificate, cipher lists, a Kerberos keytab) is refused when the worker starts, with the setting named:
starting with half the settings would fail later, on the broker's side, with a less useful error. Settings that
are not about security (``linger.ms``, ``client.id``, ...) tune the confluent-kafka clients only.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driftline.schemas.settings import SettingsError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")
MAPPED = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.password",
        "sasl.kerberos.service.name",
        "ssl.ca.location",
        "ssl.ca.pem",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
        "enable.ssl.certificate.verification",
    }
)


def is_security_setting(key: str) -> bool:
    return key.startswith(("security.", "sasl.", "ssl.")) or key == "enable.ssl.certificate.verification"


def _refuse(what: str) -> SettingsError:
    return SettingsError(f"DRIFTLINE_KAFKA_CONFIG: {what}")


def ssl_context(options: Mapping[str, str]) -> ssl.SSLContext:
    """The TLS context librdkafka would use for ``options``: the CA, the client's certificate, the checks."""
    ca, ca_pem = options.get("ssl.ca.location"), options.get("ssl.ca.pem")
    if ca or ca_pem:  # as librdkafka: a CA given is the only one trusted; none given, the system's are
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            context.load_verify_locations(**({"capath": ca} if Path(ca).is_dir() else {"cafile": ca}))
        if ca_pem:
            context.load_verify_locations(cadata=ca_pem)
    else:
        context = ssl.create_default_context()
    certificate, key = options.get("ssl.certificate.location"), options.get("ssl.key.location")
    if bool(certificate) != bool(key):
        raise _refuse("ssl.certificate.location and ssl.key.location go together (the client's certificate and key)")
    if certificate and key:
        context.load_cert_chain(certificate, key, password=options.get("ssl.key.password") or None)
    if options.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif options.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    return context


def faust_security(options: Mapping[str, str]) -> dict[str, Any]:
    """Faust app settings (``broker_credentials``) for the librdkafka settings ``options``; empty for plaintext.

    Raises :class:`.SettingsError` naming a security setting Faust cannot take, or a value that is not valid."""
    unmapped = sorted(key for key in options if is_security_setting(key) and key not in MAPPED)
    if unmapped:
        raise _refuse(
            f"{', '.join(unmapped)} cannot reach the stream worker's Faust client (aiokafka); it takes "
            f"{', '.join(sorted(MAPPED))}"
        )
    protocol = options.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise _refuse(f"security.protocol {options['security.protocol']!r} is not one of {', '.join(PROTOCOLS)}")
    if protocol == "PLAINTEXT":
        return {}
    import faust

    context = ssl_context(options) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(context)}
    mechanism = (options.get("sasl.mechanism") or options.get("sasl.mechanisms") or "GSSAPI").upper()
    if mechanism not in MECHANISMS:
        raise _refuse(
            f"sasl.mechanism {mechanism!r} cannot reach the stream worker's Faust client (aiokafka); use one of "
            f"{', '.join(MECHANISMS)}"
        )
    if mechanism == "GSSAPI":
        service = options.get("sasl.kerberos.service.name", "kafka")
        credentials: Any = faust.GSSAPICredentials(kerberos_service_name=service, ssl_context=context)
    else:
        if not options.get("sasl.username") or not options.get("sasl.password"):
            raise _refuse(f"sasl.mechanism {mechanism} needs sasl.username and sasl.password")
        credentials = faust.SASLCredentials(
            username=options["sasl.username"],
            password=options["sasl.password"],
            ssl_context=context,
            mechanism=mechanism,
        )
    return {"broker_credentials": credentials}
