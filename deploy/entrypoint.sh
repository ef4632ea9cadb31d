#!/bin/sh
# The runtime image's entrypoint: `head`, `worker`, or any other command (e.g. `ttr doctor`).
#
#   head    Ray head node, then the `ttr run` supervisor in the foreground. SIGTERM (ECS stop,
#           docker stop) drains the supervisor: no new messages, in-flight ones finish or are
#           released, exit 0. The head node's Ray processes end with the container.
#   worker  a Ray worker node joining $RAY_HEAD_ADDRESS, in the foreground.
#   portal  the web portal and its API on 0.0.0.0:$TTR_PORTAL_PORT (default 8080), behind the
#           HTTPS load balancer (deploy/elb/); no Ray. It refuses to start with demo passwords.
#
# Configuration: $TTR_CONFIG (a file, default /etc/ttr/config.yaml) or $TTR_CONFIG_YAML (the
# file's content, e.g. injected by ECS from SSM Parameter Store), written to a private file.
set -eu

if [ -n "${TTR_CONFIG_YAML:-}" ]; then
    umask 077
    printf '%s\n' "$TTR_CONFIG_YAML" > "$HOME/config.yaml"
    TTR_CONFIG="$HOME/config.yaml"
    export TTR_CONFIG
fi

# Ray's object store lives in /dev/shm: keep it within the container's shared memory
# (ECS linuxParameters.sharedMemorySize); ttr's objects are small.
store="${RAY_OBJECT_STORE_BYTES:+--object-store-memory=$RAY_OBJECT_STORE_BYTES}"

role="${1:-head}"
case "$role" in
    head)
        # --num-cpus 0: no ttr actor fits on the head, so tenants run on the workers (Ray's advice
        # for production clusters). Set RAY_HEAD_CPUS to run a one-node cluster.
        # shellcheck disable=SC2086  # $store is empty or one option
        ray start --head --port=6379 --num-cpus="${RAY_HEAD_CPUS:-0}" $store \
            --dashboard-host="${RAY_DASHBOARD_HOST:-127.0.0.1}" --disable-usage-stats
        # `exec`: ttr receives SIGTERM directly and drains.
        exec ttr run --address auto --config "$TTR_CONFIG" \
            --drain-timeout "${TTR_DRAIN_TIMEOUT:-30}" --namespace "${TTR_NAMESPACE:-ttr}"
        ;;
    worker)
        : "${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS to the head's host name or IP}"
        # shellcheck disable=SC2086  # $store is empty or one option
        exec ray start --address="${RAY_HEAD_ADDRESS}:6379" --num-cpus="${RAY_WORKER_CPUS:-2}" $store \
            --disable-usage-stats --block
        ;;
    portal)
        exec ttr web --host 0.0.0.0 --port "${TTR_PORTAL_PORT:-8080}" --config "$TTR_CONFIG"
        ;;
    *)
        exec "$@"
        ;;
esac
