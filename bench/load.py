"""Load test of the web app on loopback: many concurrent gradio_client jobs, bounded in count and time.

Reports completed, rejected-with-a-message (e.g. queue full) and failed requests, p50/p95 latency, and the app's
resident memory before and after. By default it starts the app itself (python app.py on a free 127.0.0.1 port);
--url targets one already running (memory is then reported only with --pid). `--mix` rotates four kinds of
request: fixed-length spans, spans of chosen length ([MASK]), variants, and a run stopped by /stop after its first
step; with an app it started, it also reads the app's log: the longest run (how long a compute slot was held),
runs that failed on the server, and how many times a model was loaded.

    python bench/load.py --requests 200 --concurrency 16 --steps 8
    python bench/load.py --model general --mix --requests 48 --concurrency 8 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["The state of the [MASK:4] is strong.", "Fellow citizens, the [MASK:6] of our [MASK:3] grows.",
         "We must [MASK:5] the public debt and [MASK:4] the revenue."]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_app(env_extra: dict, log) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), **env_extra)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the app did not start within 120 s")


AUTO_TEXTS = ["I left the keys [MASK] and walked to the station.", "The soup needs [MASK] before it is served."]


def first_output_or_end(job, timeout: float) -> None:
    """Wait until a job has streamed its first output or has ended. Not `for _ in job`: gradio_client's job
    iterator waits for a FINISHED status, and a job the queue refused keeps QUEUE_FULL, so the loop never ends
    (the hang of a 48-thread burst against a queue of 40)."""
    deadline = time.monotonic() + timeout
    while not (job.outputs() or job.done()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no output within {timeout:.0f} s")
        time.sleep(0.05)


def one(url: str, i: int, steps: int, sampler: str | None, mix: bool = False,
        timeout: float = 600) -> tuple[str, float, str]:
    """One request (with --mix: the i-th of four kinds); its outcome, seconds and a message when not completed.
    Settings not given are the app's own for its model. Every wait is bounded by `timeout`: a request with no
    answer by then counts as failed ("no answer"), so a stuck server shows in the table instead of hanging it."""
    from concurrent.futures import TimeoutError as FutureTimeout

    from gradio_client import Client

    t0 = time.perf_counter()
    settings = dict(steps=steps, seed=i, **({"sampler": sampler} if sampler else {}))
    kind = i % 4 if mix else 0
    try:
        client = Client(url, verbose=False)
        if kind == 2:
            out = client.submit(text=TEXTS[i % len(TEXTS)], n=2, api_name="/variants", **settings).result(timeout)
            ok = len(out) == 2 and not any("[MASK" in v["text"] for v in out)
        elif kind == 3:  # a run stopped by its own session's /stop after the first streamed output
            job = client.submit(text=TEXTS[i % len(TEXTS)], api_name="/infill", **settings)
            first_output_or_end(job, timeout)
            if not job.done():
                client.submit(api_name="/stop").result(timeout)
            out = job.result(timeout=timeout)  # its last output (a job refused as queue-full raises here)
            ok = isinstance(out[0], str) and "[MASK][MASK]" not in out[0]
        else:
            text = AUTO_TEXTS[i % len(AUTO_TEXTS)] if kind == 1 else TEXTS[i % len(TEXTS)]
            out = client.submit(text=text, api_name="/infill", **settings).result(timeout)
            ok = "[MASK" not in out[0]
        return ("completed" if ok else "failed"), time.perf_counter() - t0, "" if ok else "mask left in output"
    except (TimeoutError, FutureTimeout):
        return "failed", time.perf_counter() - t0, f"no answer within {timeout:.0f} s"
    except Exception as e:  # noqa: BLE001 (classify every outcome)
        msg = str(e)
        kind = "rejected" if any(w in msg.lower() for w in ("queue", "busy", "full", "too many")) else "failed"
        return kind, time.perf_counter() - t0, msg[:120]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running app (loopback only); default: start one")
    ap.add_argument("--pid", type=int, help="PID of that app, for memory figures")
    ap.add_argument("--requests", type=int, default=200, help="total requests (at most 2000)")
    ap.add_argument("--concurrency", type=int, default=16, help="client threads (at most 128)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--sampler", default=None, help="default: the model's own (the app's controls)")
    ap.add_argument("--mix", action="store_true", help="rotate fixed spans, [MASK] spans, variants and a stop")
    ap.add_argument("--time-limit", type=float, default=900, help="stop submitting after this many seconds")
    ap.add_argument("--rounds", type=int, default=1, help="bursts of --requests, one after another (at most 20)")
    ap.add_argument("--model", default=None, help="EDLM_MODEL for the app this script starts")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a request may wait for its answer")
    args = ap.parse_args()
    if args.url and not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit("load tests only target loopback addresses")
    n, conc = min(args.requests, 2000), min(args.concurrency, 128)
    args.rounds = max(1, min(args.rounds, 20))
    import tempfile

    proc, log = None, tempfile.NamedTemporaryFile("w+", suffix=".log", prefix="edlm-load-")
    if args.url:
        url, pid = args.url, args.pid
    else:
        proc, url = start_app({"EDLM_MODEL": args.model} if args.model else {}, log)
        pid = proc.pid
    print("| round | requests | concurrency | completed | rejected (with message) | failed | p50 s | p95 s | wall s | "
          "app RSS before → after MB |\n|---|---|---|---|---|---|---|---|---|---|")
    failed, messages = 0, []
    try:
        one(url, 0, args.steps, args.sampler)  # warm-up
        for round_ in range(1, args.rounds + 1):  # rounds against one process: is its memory flat?
            before = rss_mb(pid) if pid else None
            results, start = [], time.perf_counter()
            with ThreadPoolExecutor(conc) as pool:
                futures = []
                for i in range(n):
                    if time.perf_counter() - start > args.time_limit:
                        break
                    futures.append(pool.submit(one, url, i, args.steps, args.sampler, args.mix, args.timeout))
                for f in as_completed(futures):
                    results.append(f.result())
            wall = time.perf_counter() - start
            after = rss_mb(pid) if pid else None
            lat = sorted(t for kind, t, _ in results if kind == "completed")
            counts = {k: sum(1 for r in results if r[0] == k) for k in ("completed", "rejected", "failed")}
            pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan"))
            print(f"| {round_} | {len(results)} | {conc} | {counts['completed']} | {counts['rejected']} | "
                  f"{counts['failed']} | {pct(0.5):.2f} | {pct(0.95):.2f} | {wall:.1f} | "
                  f"{before and round(before)} → {after and round(after)} |", flush=True)
            failed += counts["failed"]
            messages += [f"{kind}: {msg}" for kind, _, msg in results if kind != "completed" and msg][:1]
    finally:
        if proc:
            proc.terminate()
            proc.wait(30)
    for line in dict.fromkeys(messages):
        print(line)
    if proc:
        log.seek(0)
        runs = [(m.group(1), float(m.group(2))) for m in
                re.finditer(r" run ([a-z]+)[^:\n]*:.*? in ([0-9.]+) s$", log.read(), re.M)]
        log.seek(0)
        loads = sum(" loaded in " in line for line in log)
        print(f"\nServer log: {len(runs)} runs, longest {max((t for _, t in runs), default=0):.1f} s (a compute slot "
              f"is held at most that long); {sum(o == 'failed' for o, _ in runs)} failed on the server; "
              f"{sum(o == 'stopped' for o, _ in runs)} stopped; model loads: {loads}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
