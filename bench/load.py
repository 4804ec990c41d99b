"""Load on a real `propetl serve` process over loopback: predict at two concurrencies and a
burst of job submissions; requests/s, latency percentiles, errors, lost requests, memory.

    python -m bench.load                 # 400 predicts at concurrency 8 and 32, 500 submits
    python -m bench.load --smoke         # a few requests: checks the script
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .common import RESULTS, write_json

REPO = Path(__file__).resolve().parent.parent
TINY = {
    "backbone": "tiny-bert",
    "tasks": ["rotten_tomatoes", "bbc_news"],
    "max_examples": 16,
    "max_steps": 4,
    "batch_size": 8,
    "eval_every": 2,
}
SUBMIT = {
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_examples": 16,
        "max_steps": 2,
        "batch_size": 8,
    }
}
TEXTS = [
    "a warm, funny and moving film",
    "dull, long and badly acted",
    "the market fell sharply after the election",
    "the striker scored twice",
]


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROPETL_")}
    env.update(
        PROPETL_DATA_DIR=str(data_dir),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        GRADIO_ANALYTICS_ENABLED="False",
        **extra,
    )
    return env


class Server:
    """`propetl serve` as a child process in its own session (so its worker can be found)."""

    def __init__(self, data_dir: Path, port: int, *, worker: bool, **env: str) -> None:
        self.data_dir, self.port, self.worker = data_dir, port, worker
        self.env = server_env(data_dir, **env)
        self.log = data_dir.parent / f"serve-{port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("propetl")),
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--worker" if self.worker else "--no-worker",
        ]

    def start(self, timeout: float = 120) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=self.env,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/jobs", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(
            f"server did not answer in {timeout:.0f}s:\n{self.log.read_text()[-3000:]}"
        )

    def rss_mb(self) -> float:
        """Resident memory of the server process (its worker is a separate process)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train_prototype(data_dir: Path) -> str:
    """One tiny two-task prototype in the registry of `data_dir` (trained in a child process,
    so this process keeps no settings of that data dir)."""
    code = (
        "from app.registry import get_registry\nfrom worker.runner import execute\n"
        f"r = get_registry()\nj = r.submit_job({{'name': 'load', 'config': {TINY!r}}})\n"
        "assert execute(j, registry=r) == 'succeeded', r.get_job(j).error\n"
        "print(r.prototype_for_job(j).uid)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=server_env(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return done.stdout.strip().splitlines()[-1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def _drive(
    url: str, count: int, concurrency: int, request: Callable[[int], tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Send `count` POSTs with at most `concurrency` in flight; every id is accounted for.

    The client is aiohttp: on these 2 cores the load generator shares the CPU with the
    server, and httpx's pool cost up to 21 ms of CPU per request at 128 connections (aiohttp
    well under 1 ms), so the figures measured the client rather than the server."""
    import aiohttp

    latencies: dict[int, float] = {}
    statuses: dict[int, int] = {}
    bodies: dict[int, Any] = {}
    failures: dict[int, str] = {}
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)

    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:

        async def one(i: int) -> None:
            path, body = request(i)
            async with gate:
                started = time.perf_counter()
                try:
                    async with client.post(path, json=body) as reply:
                        text = await reply.text()
                except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                    failures[i] = f"{err.__class__.__name__}: {err}"
                    return
                latencies[i] = (time.perf_counter() - started) * 1e3
                statuses[i] = reply.status
                if 200 <= reply.status < 300:
                    bodies[i] = json.loads(text)
                else:
                    failures[i] = f"HTTP {reply.status}: {text[:200]}"

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        seconds = time.perf_counter() - started
    answered = sorted(statuses)
    lat = list(latencies.values())
    return {
        "requests": count,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "requests_per_s": round(count / seconds, 2),
        "p50_ms": round(percentile(lat, 50), 2) if lat else None,
        "p95_ms": round(percentile(lat, 95), 2) if lat else None,
        "p99_ms": round(percentile(lat, 99), 2) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
        "errors": len(failures),
        "error_examples": sorted(set(failures.values()))[:3],
        "status_counts": {str(c): list(statuses.values()).count(c) for c in set(statuses.values())},
        "lost": count - len(answered),
        "_bodies": bodies,
    }


def predict_load(server: Server, uid: str, count: int, concurrency: int) -> dict[str, Any]:
    tasks = ["rotten_tomatoes", "bbc_news"]

    def request(i: int) -> tuple[str, dict[str, Any]]:
        return "/api/predict", {
            "prototype": uid,
            "task": tasks[i % 2],
            "text": f"{TEXTS[i % len(TEXTS)]} #{i}",
        }

    before = server.rss_mb()
    result = asyncio.run(_drive(server.url, count, concurrency, request))
    bodies = result.pop("_bodies")
    wrong = [i for i, b in bodies.items() if len(b.get("results") or []) != 1]
    result.update(
        rss_before_mb=round(before, 1), rss_after_mb=round(server.rss_mb(), 1), malformed=len(wrong)
    )
    return result


def submit_load(server: Server, count: int, concurrency: int) -> dict[str, Any]:
    def request(i: int) -> tuple[str, dict[str, Any]]:
        return "/api/jobs", {**SUBMIT, "name": f"load-{i}"}

    before = server.rss_mb()
    result = asyncio.run(_drive(server.url, count, concurrency, request))
    bodies = result.pop("_bodies")
    listed = httpx.get(f"{server.url}/api/jobs", params={"limit": 500}, timeout=60).json()
    names = {j["name"]: j["id"] for j in listed if j["name"].startswith("load-")}
    answered_ids = {b["id"] for b in bodies.values()}
    result.update(
        rss_before_mb=round(before, 1),
        rss_after_mb=round(server.rss_mb(), 1),
        distinct_job_ids=len(answered_ids),
        in_registry=len(set(names.values()) & answered_ids) if count <= 500 else None,
        queued=sum(1 for j in listed if j["name"].startswith("load-") and j["status"] == "queued"),
    )
    return result


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="propetl-load-") as tmp:
        yield Path(tmp)


def run(smoke: bool = False, work: Path | None = None) -> dict[str, Any]:
    """Start a server (no worker: submitted jobs stay queued), warm it, then measure."""
    count, submits = (16, 20) if smoke else (400, 500)
    with _workdir(work) as tmp:
        data_dir = tmp / "data"
        uid = train_prototype(data_dir)
        server = Server(data_dir, free_port(), worker=False).start()
        try:
            rss_start = server.rss_mb()
            warm = predict_load(server, uid, 8, 2)  # loads the prototype once
            assert warm["errors"] == 0, warm["error_examples"]
            out: dict[str, Any] = {
                "server": "propetl serve (uvicorn, embedded SQLite registry "
                "and broker, no worker), loopback",
                "model": "tiny-bert, 2 tasks",
                "rss_start_mb": round(rss_start, 1),
            }
            for concurrency in (8, 32):
                out[f"predict_c{concurrency}"] = predict_load(server, uid, count, concurrency)
            out["submit_c8"] = submit_load(server, submits, 8)
            out["rss_end_mb"] = round(server.rss_mb(), 1)
            out["server_alive"] = server.proc is not None and server.proc.poll() is None
        finally:
            server.stop()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or (RESULTS if not args.smoke else RESULTS / "smoke")
    result = run(args.smoke)
    write_json(out / "load.json", result)
    for name in ("predict_c8", "predict_c32", "submit_c8"):
        row = result[name]
        print(
            f"{name}: {row['requests']} requests, {row['requests_per_s']} req/s, "
            f"p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms, "
            f"errors {row['errors']}, lost {row['lost']}, "
            f"RSS {row['rss_before_mb']} -> {row['rss_after_mb']} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
