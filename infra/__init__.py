"""The local stack, the demo and the ``driftline`` command."""
