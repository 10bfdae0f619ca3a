"""Secrets stay out of logs, messages and reports: every log record of the process is redacted.

:func:`protect` registers a :class:`~driftline.schemas.settings.Settings`' secrets (the fields marked
``secret=True``: the Slack token and webhook URL). Once per process it wraps the logging record factory, so
every record from any logger (driftline's, Faust's, slack-sdk's, Airflow's stdlib loggers) has them replaced
by ``***`` in its message; a traceback that holds one is redacted and moved into the message. Inside an
Airflow task it also registers them with Airflow's own secrets masker, which covers the task log Airflow
writes itself. :func:`redact` is for text that leaves the process another way (exception messages that end
up in alerts or reports).

A webhook URL is masked whole and by its path, so a library that logs only the path after the host (where the
secret is) is covered too.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from driftline.schemas.settings import Settings

MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()


def secret_values(settings: Settings) -> set[str]:
    """The secret values in ``settings`` and the parts of them a library may print alone."""
    values: set[str] = set()
    for spec in fields(settings):
        value = getattr(settings, spec.name)
        if spec.metadata.get("secret") and isinstance(value, str) and value:
            values.add(value)
            path = urlsplit(value).path
            if "://" in value and len(path) > 8:  # a webhook's path is its secret part
                values.add(path)
    for key, value in settings.kafka_options.items():  # librdkafka passwords and keys, whatever prints them alone
        if any(word in key for word in ("password", "secret", "key", "token")) and not key.endswith(".location"):
            values.add(value)
    return values


def register(*secrets: str) -> None:
    """Mask these strings from now on (short strings are refused: masking 'a' would mangle every line)."""
    with _lock:
        _secrets.update(s for s in secrets if len(s) >= 6)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first, so a URL wins over its path)."""
    if not _secrets:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def protect(settings: Settings) -> Settings:
    """Register ``settings``' secrets, redact every log record from now on, and tell Airflow's masker."""
    secrets = secret_values(settings)
    register(*secrets)
    _install_record_factory()
    _tell_airflow(secrets)
    return settings


def _install_record_factory() -> None:
    with _lock:
        base = logging.getLogRecordFactory()
        if getattr(base, "redacts_driftline_secrets", False):
            return

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            if not _secrets:
                return record
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken format string is logging's to report, not ours
                return record
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
            if record.exc_info and record.exc_info[0] is not None:
                formatted = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
                if redact(formatted) != formatted:
                    # Formatters render exc_info their own way (Airflow's structlog one ignores exc_text): move
                    # the redacted traceback into the message and drop the exception itself.
                    record.msg, record.args = f"{clean}\n{redact(formatted)}", ()
                    record.exc_info, record.exc_text = None, None
            return record

        redacting_factory.redacts_driftline_secrets = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(redacting_factory)


def _tell_airflow(secrets: set[str]) -> None:
    # Only inside an Airflow task (its task runner is loaded): importing airflow.sdk.log elsewhere would
    # reconfigure the process's logging (measured: it replaces the root logger's handlers).
    # The task process's own masker, not airflow.sdk.log.mask_secret: that one also sends each secret to the
    # supervisor, and the message is logged in clear at DEBUG ("Sending request ... MaskSecret(value=...)"). The
    # task's log lines are redacted in the task process before they reach the supervisor; Connection passwords
    # Airflow masks on its own.
    if "airflow.sdk.execution_time.task_runner" not in sys.modules:
        return
    try:
        from airflow.sdk.log import _secrets_masker  # type: ignore[attr-defined]
    except ImportError:  # another Airflow 3 layout: logging.py's own redaction still covers driftline's lines
        return
    for secret in secrets:
        try:
            _secrets_masker().add_mask(secret)
        except Exception:  # noqa: BLE001, S112 - outside a task Airflow may refuse; logs are still redacted
            continue
