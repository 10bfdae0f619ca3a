"""driftline: streaming drift and degradation monitoring for ML models.

The repository's top-level folders are this package's subpackages:
``streams/`` is :mod:`driftline.streams`, ``detectors/`` is
:mod:`driftline.detectors`, and so on (see ``docs/architecture.md``).
"""

from __future__ import annotations

__version__ = "0.1.0"
