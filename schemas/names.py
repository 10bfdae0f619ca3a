"""The one rule for model and version names, wherever they appear: events, monitor configs, the CLI, storage paths.

A name becomes a folder in storage (``predictions/model=M/version=V/…``, ``models/M/…``), a Kafka key and a
part of alert ids, so it is kept to what every one of those can hold unchanged: 1 to 128 characters, letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or a digit. That excludes ``.`` and ``..``, path
separators, spaces, control characters and names that read as command-line flags.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

NAME_RULE = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or a digit"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NAME = NAME


class NameError_(ValueError):
    """A model or version name that breaks :data:`NAME_RULE`; the message says what and what would be right."""


def check_name(value: object, what: str = "name") -> str:
    """``value`` if it is a valid model or version name, else :class:`NameError_` naming ``what``."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise NameError_(f"{what} {_problem(value)}")
    return value


def _problem(value: object) -> str:
    return f"{value!r} is not a valid name: use {NAME_RULE} (for example 'churn' or 'v7')"


def _check(value: str) -> str:
    # pydantic names the field itself; a plain ValueError keeps its message as the reason.
    if not _NAME.fullmatch(value):
        raise ValueError(_problem(value))
    return value


# For pydantic models: a model or version name (events, configs, records). The JSON schema carries the same rule
# for producers written in other languages.
ModelName = Annotated[
    str,
    AfterValidator(_check),
    WithJsonSchema({"type": "string", "pattern": f"^{_NAME.pattern}$", "description": f"A name: {NAME_RULE}."}),
]
