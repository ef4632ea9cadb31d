#!/usr/bin/env python3
"""The embedded AWS emulator's cost per call, without the runtime (issue 11).

Starts the emulator (runtime/local/aws_emulator.py) in this process, then a separate client
process (so its CPU does not share this process's GIL with moto) runs a fixed sequence from a
thread pool: per step one sqs SendMessage, one sqs ReceiveMessage, a DeleteMessage of what it
received (a queue that only grows makes moto slower per receive) and one s3 PutObject (1 KB).
Prints calls/s and the emulator process's CPU per call.

    .venv/bin/python scripts/emulator_calls.py                 # the emulator as `ttr local up` runs it
    .venv/bin/python scripts/emulator_calls.py --moto-plain    # moto's own ThreadedMotoServer
    .venv/bin/python scripts/emulator_calls.py --steps 2000 --threads 8 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENT = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from runtime.adapters.aws import AwsClients, call_counts
endpoint, steps, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
clients = AwsClients("us-east-1", endpoint)
s3, sqs = clients.client("s3"), clients.client("sqs")
s3.create_bucket(Bucket="emulator-calls")
url = sqs.create_queue(QueueName="emulator-calls")["QueueUrl"]
body = b"x" * 1024
def step(i):
    sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0).get("Messages", [])
    if got:   # a queue that only grows makes every receive slower (moto scans it)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    s3.put_object(Bucket="emulator-calls", Key=f"k{i % 50}", Body=body)
for i in range(threads):   # warm: connections and the emulator's per-service apps
    step(i)
print("ready", flush=True)
sys.stdin.readline()
calls0 = sum(call_counts().values())
t0 = time.monotonic()
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(step, range(steps)))
print(json.dumps({"wall_s": time.monotonic() - t0, "calls": sum(call_counts().values()) - calls0}), flush=True)
"""


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system


def measure(endpoint: str, steps: int, threads: int) -> dict:
    child = subprocess.Popen([sys.executable, "-c", CLIENT, str(ROOT), endpoint, str(steps), str(threads)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("emulator_calls: the client process did not start")
        cpu0 = cpu_now()   # this process: the emulator (the main thread only waits)
        child.stdin.write("go\n")
        child.stdin.flush()
        result = json.loads(child.stdout.readline())
        cpu = cpu_now() - cpu0
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    return {**result, "calls_per_s": result["calls"] / result["wall_s"],
            "server_cpu_ms_per_call": 1000 * cpu / result["calls"]}


class PlainMoto:
    """moto's ThreadedMotoServer as moto ships it (the reference for the emulator's own changes)."""

    def __init__(self):
        from runtime.local.aws_emulator import LOOPBACK, free_port

        self.port = free_port()
        self.endpoint_url = f"http://{LOOPBACK}:{self.port}"

    def __enter__(self):
        import logging

        from moto.server import ThreadedMotoServer

        from runtime.local.aws_emulator import LOOPBACK, wait_http

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.server = ThreadedMotoServer(ip_address=LOOPBACK, port=self.port, verbose=False)
        self.server.start()
        wait_http(self.endpoint_url + "/moto-api/data.json")
        return self

    def __exit__(self, *exc):
        self.server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000, help="steps of SendMessage + ReceiveMessage (+ DeleteMessage) + PutObject")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--moto-plain", action="store_true", help="moto's own ThreadedMotoServer")
    args = ap.parse_args()
    from runtime.local.aws_emulator import AwsEmulator

    server = PlainMoto() if args.moto_plain else AwsEmulator()
    label = "moto ThreadedMotoServer" if args.moto_plain else "embedded emulator"
    results = []
    with server:
        for _ in range(args.runs):
            results.append(measure(server.endpoint_url, args.steps, args.threads))
            r = results[-1]
            print(f"  {r['calls']} calls in {r['wall_s']:.2f}s: {r['calls_per_s']:.0f} calls/s, "
                  f"emulator CPU {r['server_cpu_ms_per_call']:.2f} ms/call", file=sys.stderr, flush=True)
    med = lambda k: statistics.median(r[k] for r in results)  # noqa: E731
    print(f"{label}: {med('calls_per_s'):.0f} calls/s, emulator CPU {med('server_cpu_ms_per_call'):.2f} ms per call "
          f"(median of {args.runs}; {args.steps} x SendMessage + ReceiveMessage + DeleteMessage + PutObject, {args.threads} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
