"""The rollout domain, in one home: the deployment state machine (:mod:`.state`, pure), its store
(:mod:`.store`: stored beside the model, then published, then announced) and publisher (:mod:`.publisher`, the
compacted deployments topic), the canary gates (:mod:`.gates`, pure) and the controller the stream worker feeds
(:mod:`.control`, pure), the router serving code embeds (:mod:`.router`) and the verdicts server for Argo
Rollouts and Flagger (:mod:`.verdicts`). None of it imports Airflow: the worker, the DAG tasks and the CLI all use
it."""
