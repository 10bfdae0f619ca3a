from __future__ import annotations

from driftline.dags.tasks.failures import failure_text
from driftline.schemas.errors import UserError
from driftline.schemas.secrets import register


def test_a_failure_message_names_the_task_the_tries_the_line_and_the_log_with_secrets_masked():
    register("xoxb-secret-token-value")
    text = failure_text(
        "driftline_drift",
        "check_model[churn]",
        "manual__1",
        tries=4,
        error=RuntimeError("Slack said no to xoxb-secret-token-value\n  twice"),
        log_url="http://airflow/log",
    )
    assert text == (
        ":x: driftline: task *driftline_drift.check_model[churn]* failed for good after 4 tries (run manual__1): "
        "RuntimeError: Slack said no to *** twice\nLog: http://airflow/log"
    )
    one = failure_text("d", "t", "r", tries=1, error=UserError("model 'm': bad"), log_url="u")
    assert "after 1 try (run r): model 'm': bad\n" in one  # a user error is its line alone
