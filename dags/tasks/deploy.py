"""The deploy DAG's task: one rollout action from a run's conf, through the rollout domain
(driftline.streams.rollouts)."""

from __future__ import annotations

from typing import Any

from driftline.schemas.config import DeploymentSettings, load_monitor_configs
from driftline.schemas.names import check_name
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store
from driftline.streams.rollouts import store as rollout_store
from driftline.streams.rollouts.publisher import DeploymentPublisher
from driftline.streams.rollouts.state import DeployError


def act_from_conf(settings: Settings, conf: dict[str, Any], *, who: str) -> dict[str, Any]:
    """The deploy DAG's task: one action from a run's conf (``model``, ``action``, for ``start`` a ``version``
    and optionally ``strategy`` and ``stages``; a ``reason``), stored, published and announced on Slack."""
    model = check_name(str(conf.get("model") or ""), "model")
    action = str(conf.get("action") or "")
    storage = Storage.from_settings(settings)
    publish = DeploymentPublisher(settings, timeout=10.0)
    config = load_monitor_configs(settings.config_dir).get(model)
    reason = f"{action} by {who}" + (f": {conf['reason']}" if conf.get("reason") else "")
    before = model_store.read_deployment_state(storage, model)
    if action == "start":
        if not conf.get("version"):
            raise DeployError("action 'start' needs the version to roll out: conf {'version': 'v4', ...}")
        base = config.deployment if config else DeploymentSettings()
        overrides = {k: conf[k] for k in ("strategy", "stages") if conf.get(k) is not None}
        chosen = DeploymentSettings.model_validate({**base.model_dump(), **overrides})
        state = rollout_store.start_rollout(
            storage,
            model,
            str(conf["version"]),
            chosen,
            reason=reason,
            signing_key=settings.model_signing_key,
            publish=publish,
        )
    else:
        state = rollout_store.act(storage, model, action, reason=reason, publish=publish)
    rollout_store.announce(settings, storage, before, state, config.alerts.slack_channel if config else None)
    return {
        "model": model,
        "status": state.status,
        "serving": state.serving,
        "candidate": state.candidate,
        "shares": state.shares(),
        "revision": state.revision,
    }
