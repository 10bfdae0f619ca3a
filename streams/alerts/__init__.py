"""Alerts: their ids (:mod:`.ids`, one factory per kind), how they read (:mod:`.formatting`: Block Kit and the
console's text), how they reach Slack or the console (:mod:`.delivery`), and the outbox the DAG tasks and the CLI
queue them in (:mod:`.outbox`). The stream worker's alerts go through the alerts topic (streams/agents.py)."""
