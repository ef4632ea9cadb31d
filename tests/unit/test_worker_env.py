"""Which actors need a runtime_env for the forwarded variables (actors.supervisor.worker_env): a
runtime_env costs every worker a second Python start (Ray's setup_worker.py), so a local Ray's
workers, which inherit the variables they were started with, get none unless something changed."""

from actors.supervisor import worker_env

TRACES = {"TTR_TRACES_FILE": "/tmp/t.jsonl"}


def test_nothing_to_forward_needs_no_runtime_env():
    assert worker_env({}, None) is None
    assert worker_env({}, {}) is None


def test_a_local_ray_started_with_the_same_variables_needs_none():
    assert worker_env(dict(TRACES), dict(TRACES)) is None


def test_variables_set_or_changed_after_the_local_ray_started_are_forwarded():
    assert worker_env(dict(TRACES), {}) == {"env_vars": TRACES}
    changed = {"TTR_TRACES_FILE": "/tmp/other.jsonl"}
    assert worker_env(changed, dict(TRACES)) == {"env_vars": changed}


def test_a_joined_cluster_always_gets_them():
    assert worker_env(dict(TRACES), None) == {"env_vars": TRACES}
