"""Mistakes a user can fix, told in one line: what was wrong, where (model, file or URL), and what would be right.

:func:`explain` turns the exceptions that such mistakes raise (a missing file, S3 without credentials, an
unreachable endpoint, a config that does not hold) into that line; anything it does not recognise is a bug
and keeps its traceback. :func:`user_errors` applies it around a block (a DAG task's body, a CLI command):
a recognised mistake leaves as :class:`UserError`, with the line as its message and no chained traceback.

:func:`check_monitor_config` checks what a config names before anything runs on it: the reference is
readable and the retrain entry point importable.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from driftline.schemas.config import ConfigError, MonitorConfig


class UserError(RuntimeError):
    """A mistake a user can fix; the message is one line naming what, where and what would be right."""


class ConfigProblem(UserError):
    """A monitor config that does not hold (what it names cannot be read or imported): no retry can fix it."""


_TRANSIENT_S3 = {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"}


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a network failure that may pass (worth a retry), not a fault of what was asked for."""
    if type(exc).__module__.startswith(("botocore", "aiobotocore")):
        return type(exc).__name__ in _TRANSIENT_S3
    return isinstance(exc, ConnectionError | TimeoutError)


# Exceptions whose own message already is that line (they are raised with it on purpose).
def _own_message_types() -> tuple[type[BaseException], ...]:
    from driftline.schemas.names import NameError_
    from driftline.schemas.settings import SettingsError
    from driftline.schemas.storage.base import StorageError, UnreadableFileError
    from driftline.schemas.storage.layout import LayoutError

    return (ConfigError, NameError_, SettingsError, StorageError, UnreadableFileError, LayoutError, UserError)


_S3_HINTS = {
    "NoCredentialsError": "S3 has no usable credentials ({exc}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(or AWS_PROFILE, or an instance role) in the environment of the worker and the Airflow tasks",
    "EndpointConnectionError": "cannot reach S3 ({exc}); check DRIFTLINE_S3_ENDPOINT_URL (or AWS_ENDPOINT_URL) "
    "and that the endpoint is up and reachable from this machine",
    "ClientError": "S3 refused the request ({exc}); check the bucket name and the credentials' permissions",
}
_S3_HINTS["PartialCredentialsError"] = _S3_HINTS["CredentialRetrievalError"] = _S3_HINTS["NoCredentialsError"]
_S3_HINTS["ConnectTimeoutError"] = _S3_HINTS["ConnectionClosedError"] = _S3_HINTS["EndpointConnectionError"]


def _line(exc: BaseException) -> str | None:
    line: str | None
    if isinstance(exc, _own_message_types()):
        line = str(exc)
    elif type(exc).__module__.startswith(("botocore", "aiobotocore")):
        hint = _S3_HINTS.get(type(exc).__name__)
        line = hint.format(exc=exc) if hint else None
    elif isinstance(exc, FileNotFoundError):
        line = f"{exc.filename or exc} does not exist ({exc.strerror or exc}); check the path or URL in the config"
    elif isinstance(exc, PermissionError):
        line = f"no permission for {exc.filename or exc} ({exc.strerror or exc}); check its owner and mode"
    elif isinstance(exc, LookupError) and not isinstance(exc, KeyError | IndexError):
        line = str(exc)  # raised with a sentence on purpose (e.g. "no stored predictions for model ...")
    elif type(exc).__module__.startswith(("cimpl", "confluent_kafka")):
        line = f"Kafka: {exc}; check DRIFTLINE_BOOTSTRAP_SERVERS and that the broker is up"
    else:
        line = None
    return line


def explain(exc: BaseException, where: str) -> str | None:
    """One line for a mistake a user can fix, prefixed by ``where`` (e.g. ``model 'churn'``); ``None`` otherwise."""
    line = _line(exc)
    if line is None:
        return None
    line = " ".join(line.split())  # one line, whatever the exception's text held
    return line if line.startswith(where) else f"{where}: {line}"


@contextmanager
def user_errors(where: str) -> Iterator[None]:
    """Re-raise a mistake a user can fix as :class:`UserError` with its one line; let anything else through."""
    try:
        yield
    except UserError as exc:
        if exc.__cause__ is None and exc.__context__ is None:
            raise
        # The line says it all; the chain below it (an SDK's retries, a socket error) is not for the user.
        told = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
        raise UserError(" ".join(told.split())) from None
    except Exception as exc:
        line = explain(exc, where)
        if line is None:
            raise
        raise UserError(line) from None


def check_reference(config: MonitorConfig, storage_options: Mapping[str, Any]) -> str | None:
    """Why the config's reference cannot be read, or ``None`` when its schema reads (Parquet) or its header and a
    first row do (CSV). What the file is, its first bytes say, not its name; reads only the footer or the first
    lines, not the data."""
    import fsspec
    import pyarrow.parquet as pq

    from driftline.detectors.sources import detect_format

    url = config.reference
    options = dict(storage_options) if "://" in url and not url.startswith("file://") else {}
    try:
        fmt, compression = detect_format(url, options)
        if fmt == "profile":
            return (
                f"reference {url} is a driftline profile; the config's reference must be the model's training data "
                "as Parquet or CSV (the DAG profiles it once and keeps the profile)"
            )
        with fsspec.open(url, "rb", compression=compression, **options) as handle:
            if fmt == "csv":
                handle.readline()
                if not handle.readline().strip():
                    return f"reference {url} has a header line but no rows; it must be the model's training data"
            else:
                pq.read_schema(handle)
    except Exception as exc:
        if transient(exc):
            raise  # not the config's fault: the caller retries (a DAG task) or reports it (doctor)
        line = explain(exc, "reference")
        if line is None:
            line = f"reference {url} is not readable ({type(exc).__name__}: {exc})"
        return line + "; it must be the model's training data as Parquet or CSV"
    return None


def check_entry_point(config: MonitorConfig) -> str | None:
    """Why ``retrain.entry_point`` cannot be called, or ``None`` (also when there is none)."""
    spec = config.retrain.entry_point
    if spec is None:
        return None
    module_name, function_name = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - importing user code can raise anything; report it as one line
        return (
            f"retrain.entry_point {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc}); "
            "install the package that holds it where the Airflow tasks run"
        )
    if not callable(getattr(module, function_name, None)):
        return f"retrain.entry_point {spec!r}: {module_name} has no function {function_name!r}"
    return None


def check_monitor_config(
    config: MonitorConfig, storage_options: Mapping[str, Any], *, entry_point: bool = True
) -> list[str]:
    """Every problem with what the config names, each one line prefixed by the model; empty when it holds.
    ``entry_point=False`` leaves the retrain entry point out (the drift check does not call it)."""
    problems = [check_reference(config, storage_options), check_entry_point(config) if entry_point else None]
    return [f"model {config.model!r}: {problem}" for problem in problems if problem]


def checked(config: MonitorConfig, storage_options: Mapping[str, Any], *, entry_point: bool = True) -> MonitorConfig:
    """``config`` when :func:`check_monitor_config` finds nothing; :class:`ConfigProblem` with the problems
    otherwise. A network failure on the way propagates as it is (it may pass)."""
    problems = check_monitor_config(config, storage_options, entry_point=entry_point)
    if problems:
        raise ConfigProblem("; ".join(problems))
    return config
