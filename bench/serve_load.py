"""Serving many tasks to many users: a real `propetl serve` over HTTP against offline batches.

One MiniLM adapter prototype (bottleneck 64, keep 0.5) with 5, 100 and 1,000 tasks (random
masks and heads: speed and memory do not depend on what was learned), registered in the
server's registry. Measured in ONE run, so that the ratios compare like with like:

- `offline_sps`: samples/s of the 5-task prototype in mixed batches of 32, in this process;
- `c1` .. `c128`: requests/s and p50 / p99 latency with that many clients, requests spread
  over the 5 tasks, one text each, through `propetl serve` (the batching predictor);
- `c32_100_tasks`: c32 with requests spread over 100 tasks;
- `mem_5_tasks_mb` / `mem_1000_tasks_mb`: resident memory of a process that loaded the
  prototype through the playground engine and answered requests over all its tasks;
- the PEFT reference: the same MiniLM with 5 LoRA adapters served the obvious way (one
  request at a time under a lock, `set_adapter` per request), over HTTP the same way.

    python -m bench.serve_load            # 3 rounds; about 10 minutes on 2 shared CPU cores
    python -m bench.serve_load --smoke    # tiny-bert, a few requests: checks the script
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from .common import RESULTS, write_json
from .load import REPO, Server, _drive, free_port, server_env

#: Torch threads of every process measured. One: on 2 cores shared with other work, two
#: OpenMP threads wait on each other (8.5 against 47 samples/s offline, measured).
THREADS = 1
#: The server's bound on materialised tasks: above the 100-task working set of `c32_100_tasks`
#: (with the default 64, a cycle over 100 tasks misses the LRU cache on every batch). The
#: memory figures use the default, 64.
SERVER_TASK_CACHE = 128
TEXTS = [
    "a warm, funny and moving film",
    "dull, long and badly acted",
    "the market fell sharply after the election",
    "the striker scored twice",
    "an uneven but often charming comedy about growing old",
    "shares in the bank rose after profits beat forecasts",
    "the new phone has a faster chip and a better camera",
    "parliament voted on the bill late on tuesday night",
]


# --------------------------------------------------------------- a prototype with many tasks


def task_names(count: int) -> list[str]:
    return [f"t{i:04d}" for i in range(count)]


def write_many_task_model(
    folder: Path, backbone: str, count: int, *, seed: int = 0, bottleneck: int = 64, labels: int = 2
) -> list[str]:
    """A ProPETL model folder over `backbone` with `count` tasks whose masks (keep 0.5) and
    heads are random, so that every task answers differently. Label names carry the task's
    name (`t0003:a`), so an answer shows whose it is. Returns the task names."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from propetl.backbones import load_backbone_model
    from propetl.config import PropetlConfig, TaskHeadSpec
    from propetl.model import ProPETLModel

    torch.manual_seed(seed)
    config = PropetlConfig(petl="adapter", bottleneck=bottleneck, keep=0.5)
    model = ProPETLModel(
        load_backbone_model(backbone),
        config,
        [TaskHeadSpec("seed", labels)],
        backbone_name=backbone,
    )
    with torch.no_grad():
        for bank in model.banks.values():
            for value in bank.prototype.parameters():  # type: ignore[union-attr]
                value.normal_(0.0, 0.05)
    model.save_pretrained(folder)
    template = folder / "tasks" / "seed"
    with safe_open(str(template / "masks.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    sizes = {k: v.numel() for k, v in load_file(str(template / "masks.safetensors")).items()}
    head = load_file(str(template / "head.safetensors"))
    rng = np.random.default_rng(seed)
    names = task_names(count)
    for name in names:
        out = folder / "tasks" / name
        out.mkdir(parents=True)
        save_file(
            {
                k: torch.from_numpy(rng.integers(0, 256, n, dtype=np.uint8))
                for k, n in sizes.items()
            },
            str(out / "masks.safetensors"),
            metadata=metadata,
        )
        save_file(
            {
                k: torch.from_numpy(rng.normal(0, 0.5, tuple(v.shape)).astype(np.float32))
                for k, v in head.items()
            },
            str(out / "head.safetensors"),
            metadata={"format": "pt"},
        )
        spec = TaskHeadSpec(name, labels, tuple(f"{name}:{c}" for c in "abcdefgh"[:labels]))
        (out / "task.json").write_text(json.dumps({"task": spec.to_dict(), "keep": 0.5}))
    shutil.rmtree(template)
    manifest = json.loads((folder / "propetl_config.json").read_text())
    manifest["tasks"] = names
    (folder / "propetl_config.json").write_text(json.dumps(manifest, indent=2))
    return names


def register_many_task_prototype(
    registry: Any, backbone: str, count: int, *, seed: int = 0, max_length: int = 64
) -> str:
    """Write a `count`-task model folder into the artifacts and register it as the result of
    a job (as a worker would); returns the prototype's uid."""
    import uuid

    from app.registry import RunOutcome, TaskOutcome

    job_id = registry.submit_job(
        {
            "name": f"{count} tasks",
            "config": {
                "backbone": backbone,
                "tasks": ["rotten_tomatoes"],
                "max_length": max_length,
            },
        }
    )
    claim = registry.claim_job(job_id, host="bench")
    assert claim is not None
    uid = str(uuid.uuid4())
    folder = Path(registry.settings.artifacts_dir) / uid
    names = write_many_task_model(folder, backbone, count, seed=seed)
    bits = (folder / "tasks" / names[0] / "masks.safetensors").stat().st_size
    outcome = RunOutcome(
        artifact_path=str(folder),
        storage={},
        uid=uid,
        tasks={
            name: TaskOutcome(
                info={
                    "source": "synthetic",
                    "label_names": [f"{name}:a", f"{name}:b"],
                    "metrics": ["accuracy"],
                    "main_metric": "accuracy",
                },
                artifact_path=str(folder / "tasks" / name),
                mask_bytes=bits,
            )
            for name in names
        },
    )
    assert registry.finish_job(job_id, claim.attempt, outcome) == uid
    return uid


def make_prototypes(data_dir: Path, backbone: str, counts: Sequence[int]) -> dict[int, str]:
    """Prototypes of each task count in the registry of `data_dir` (in a child process, so
    this process keeps no settings of that data dir)."""
    code = (
        "import json\nfrom app.registry import get_registry\n"
        "from bench.serve_load import register_many_task_prototype as reg\n"
        f"r = get_registry()\nprint(json.dumps({{n: reg(r, {backbone!r}, n, seed=n) "
        f"for n in {list(counts)!r}}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=server_env(data_dir),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


# --------------------------------------------------------------- measurements


def memory_mb(data_dir: Path, uid: str) -> dict[str, float]:
    """RSS of a process that loaded the prototype through the engine and answered requests
    over all its tasks (so the bounded cache of materialised tasks is full)."""
    code = f"""
import ctypes, gc, json
from pathlib import Path
from app.playground import get_engine
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
engine = get_engine()
loaded, load_ms = engine.load({uid!r})
names = loaded.tasks
for start in range(0, len(names), 32):
    engine.predict_mixed({uid!r}, [(t, "a short text", None) for t in names[start:start + 32]])
banks = list(loaded.model.banks.values())
packed = sum(b.numel() for bank in banks for t in bank.tasks.values()
             for b in t.buffers() if b.dtype.is_floating_point is False)
heads = sum(p.numel() * 4 for p in loaded.model.heads.parameters())
cache = sum(v.numel() * v.element_size() for bank in banks for t in bank.cached_tasks
            for v in bank._cache[t].values())
before_trim = rss()
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so RSS counts live memory
print(json.dumps({{"rss_mb": rss(), "rss_untrimmed_mb": before_trim, "load_ms": load_ms,
                  "packed_mask_mb": packed / 2**20, "heads_mb": heads / 2**20,
                  "materialised_mb": cache / 2**20,
                  "materialised_tasks": len(banks[0].cached_tasks)}}))
"""
    return json.loads(_child(data_dir, code))


def _child(data_dir: Path, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=server_env(data_dir),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return done.stdout.strip().splitlines()[-1]


def http_load(
    url: str, uid: str | None, tasks: Sequence[str], count: int, concurrency: int
) -> dict[str, Any]:
    """`count` one-text predicts, request i for task i mod len(tasks); checks that each
    answer is its own task's (its label names carry the task)."""

    def request(i: int) -> tuple[str, dict[str, Any]]:
        body = {"task": tasks[i % len(tasks)], "text": f"{TEXTS[i % len(TEXTS)]} #{i}"}
        return "/api/predict", ({"prototype": uid, **body} if uid else body)

    result = asyncio.run(_drive(url, count, concurrency, request))
    bodies = result.pop("_bodies")
    wrong = [
        i
        for i, b in bodies.items()
        if [r.get("task") for r in b.get("results") or []] != [tasks[i % len(tasks)]]
    ]
    result["wrong_task"] = len(wrong)
    result["refused_503"] = result.pop("status_counts").get("503", 0)
    result.pop("requests_per_s")
    result["rps"] = round(count / result["seconds"], 2)
    return result


# --------------------------------------------------------------- the PEFT reference server


class PeftBody(BaseModel):
    """A predict request of the reference server (module level, so FastAPI reads it as the
    JSON body)."""

    task: str
    text: str


def peft_app(backbone: str, tasks: int):
    """A FastAPI app serving a MiniLM with `tasks` LoRA adapters one request at a time."""
    import threading

    from fastapi import FastAPI
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from propetl.backbones import load_tokenizer, resolve_path
    from propetl.tiny import tiny_config

    if backbone.startswith("tiny-"):
        config = tiny_config(backbone[5:], vocab_size=30522)
        config.num_labels = 2
        base = AutoModelForSequenceClassification.from_config(config)
    else:
        base = AutoModelForSequenceClassification.from_pretrained(
            resolve_path(backbone), num_labels=2
        )
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["query", "value"], init_lora_weights=False
    )
    model = get_peft_model(base, lora, adapter_name="t0000")
    for name in task_names(tasks)[1:]:
        model.add_adapter(name, lora)
    model.eval()
    tokenizer = load_tokenizer(backbone)
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/api/predict")
    def predict(body: PeftBody) -> dict[str, Any]:
        with lock, torch.no_grad():
            model.set_adapter(body.task)
            inputs = tokenizer([body.text], truncation=True, max_length=64, return_tensors="pt")
            probs = torch.softmax(model(**inputs).logits[0], -1).tolist()
        return {"results": [{"task": body.task, "scores": probs}]}

    @app.get("/api/jobs")
    def ready() -> list[Any]:
        return []

    return app


class PeftServer(Server):
    """The PEFT reference app under uvicorn, started like `propetl serve`."""

    def __init__(self, data_dir: Path, port: int, backbone: str, tasks: int) -> None:
        super().__init__(data_dir, port, worker=False, OMP_NUM_THREADS=str(THREADS))
        self.backbone, self.tasks = backbone, tasks

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.serve_load",
            "--peft-server",
            str(self.port),
            "--backbone",
            self.backbone,
            "--tasks",
            str(self.tasks),
        ]

    def start(self, timeout: float = 180) -> Server:
        return super().start(timeout)


# --------------------------------------------------------------- the run


class Offline:
    """The 5-task prototype loaded in this process: samples/s in mixed batches of 32."""

    def __init__(self, folder: Path, backbone: str, max_length: int = 64) -> None:
        from propetl.backbones import load_tokenizer
        from propetl.inference import Predictor
        from propetl.model import ProPETLModel

        model = ProPETLModel.from_pretrained(folder)
        self.predictor = Predictor(model, load_tokenizer(backbone), max_length=max_length)
        names = model.task_names
        self.batch = [
            (names[i % len(names)], (f"{TEXTS[i % len(TEXTS)]} #{i}", None)) for i in range(32)
        ]
        self.predictor.predict_mixed(self.batch)

    def sps(self, seconds: float) -> float:
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            self.predictor.predict_mixed(self.batch)
            done += len(self.batch)
        return done / (time.perf_counter() - started)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def run(smoke: bool = False, work: Path | None = None, rounds: int | None = None) -> dict[str, Any]:
    """Set up, then `rounds` rounds; each round measures offline, every concurrency, the
    100-task c32 and the PEFT reference back to back, so that a ratio's two sides see the
    same load on a shared machine. Figures are the medians over rounds (ratios: the median
    of each round's ratio)."""
    torch.set_num_threads(THREADS)
    backbone = "tiny-bert" if smoke else "minilm-l6"
    many = 40 if smoke else 1000
    rounds = rounds or (1 if smoke else 3)
    counts = {1: 4, 8: 8, 32: 32, 128: 128} if smoke else {1: 40, 8: 160, 32: 256, 128: 384}
    seconds = 1.0 if smoke else 4.0
    out: dict[str, Any] = {
        "load_average": round(os.getloadavg()[0], 2),
        "backbone": backbone,
        "prototype": "adapter, bottleneck 64, keep 0.5",
        "max_length": 64,
        "rounds": rounds,
        "torch_threads": THREADS,
        "requests": {f"c{c}": n for c, n in counts.items()},
        "settings": {
            "serve_max_batch": 32,
            "serve_max_wait_ms": 5,
            "serve_task_cache": SERVER_TASK_CACHE,
            "memory_task_cache": 64,
        },
    }
    with tempfile.TemporaryDirectory(prefix="propetl-serve-load-") as tmp:
        root = work or Path(tmp)
        data_dir = root / "data"
        started = time.monotonic()
        uids = make_prototypes(data_dir, backbone, (5, 100, many))
        out["setup_s"] = round(time.monotonic() - started, 1)
        mem5, mem_many = memory_mb(data_dir, uids[5]), memory_mb(data_dir, uids[many])
        out["mem_5_tasks"], out[f"mem_{many}_tasks"], out["many_tasks"] = mem5, mem_many, many
        offline = Offline(data_dir / "artifacts" / uids[5], backbone)
        settings = {
            "PROPETL_SERVE_MAX_BATCH": "32",
            "PROPETL_SERVE_MAX_WAIT_MS": "5",
            "PROPETL_SERVE_TASK_CACHE": str(SERVER_TASK_CACHE),
            "OMP_NUM_THREADS": str(THREADS),
        }
        server = Server(data_dir, free_port(), worker=False, **settings).start()
        peft = PeftServer(root / "peft", free_port(), backbone, 5)
        try:
            peft.start()
            for uid, n in ((uids[5], 5), (uids[100], 100)):  # load both before timing
                warm = http_load(server.url, uid, task_names(n), 8, 2)
                assert warm["errors"] == 0, warm["error_examples"]
            warm = http_load(peft.url, None, task_names(5), 8, 2)
            assert warm["errors"] == 0, f"PEFT reference: {warm['error_examples']}"
            out["per_round"] = []
            for _ in range(rounds):
                row: dict[str, Any] = {"offline_sps": round(offline.sps(seconds), 2)}
                for concurrency, count in counts.items():
                    row[f"c{concurrency}"] = http_load(
                        server.url, uids[5], task_names(5), count, concurrency
                    )
                row["c32_100_tasks"] = http_load(
                    server.url, uids[100], task_names(100), counts[32], 32
                )
                row["offline_sps_after"] = round(offline.sps(seconds), 2)
                row["peft"] = {
                    f"c{c}": http_load(peft.url, None, task_names(5), n, c)
                    for c, n in counts.items()
                }
                offline_mean = (row["offline_sps"] + row["offline_sps_after"]) / 2
                row["c32_ratio"] = round(row["c32"]["rps"] / offline_mean, 3)
                row["c32_ratio_100_tasks"] = round(row["c32_100_tasks"]["rps"] / offline_mean, 3)
                out["per_round"].append(row)
                print(
                    f"round: offline {offline_mean:.1f} sps, c32 {row['c32']['rps']} rps "
                    f"(ratio {row['c32_ratio']}), 100 tasks {row['c32_100_tasks']['rps']} rps "
                    f"(ratio {row['c32_ratio_100_tasks']}), PEFT c32 "
                    f"{row['peft']['c32']['rps']} rps",
                    flush=True,
                )
            out["server_rss_mb"] = round(server.rss_mb(), 1)
        finally:
            server.stop()
            peft.stop()
    per = out["per_round"]
    out["offline_sps"] = round(
        _median([(r["offline_sps"] + r["offline_sps_after"]) / 2 for r in per]), 2
    )
    for key in [f"c{c}" for c in counts] + ["c32_100_tasks"]:
        out[key] = _summary([r[key] for r in per])
    out["peft"] = {f"c{c}": _summary([r["peft"][f"c{c}"] for r in per]) for c in counts}
    out["c32_ratio"] = round(_median([r["c32_ratio"] for r in per]), 3)
    out["c32_ratio_100_tasks"] = round(_median([r["c32_ratio_100_tasks"] for r in per]), 3)
    out["mem_extra_mb"] = round(mem_many["rss_mb"] - mem5["rss_mb"], 1)
    out["packed_extra_mb"] = round(mem_many["packed_mask_mb"] - mem5["packed_mask_mb"], 1)
    return out


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of rate and latency; sums of errors, lost, wrong and 503s."""
    return {
        "rps": round(_median([r["rps"] for r in rows]), 2),
        "p50_ms": round(_median([r["p50_ms"] or 0 for r in rows]), 1),
        "p99_ms": round(_median([r["p99_ms"] or 0 for r in rows]), 1),
        "requests": sum(r["requests"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "lost": sum(r["lost"] for r in rows),
        "wrong_task": sum(r["wrong_task"] for r in rows),
        "refused_503": sum(r["refused_503"] for r in rows),
        "error_examples": sorted({e for r in rows for e in r["error_examples"]})[:3],
    }


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """The `serve.*` keys of summary.json."""
    out: dict[str, Any] = {"serve.offline_sps": result["offline_sps"]}
    for c in (1, 8, 32, 128):
        row = result[f"c{c}"]
        out[f"serve.c{c}_rps"] = row["rps"]
        out[f"serve.c{c}_p50_ms"] = row["p50_ms"]
        out[f"serve.c{c}_p99_ms"] = row["p99_ms"]
        out[f"serve.peft_c{c}_rps"] = result["peft"][f"c{c}"]["rps"]
        out[f"serve.peft_c{c}_p99_ms"] = result["peft"][f"c{c}"]["p99_ms"]
    out["serve.c32_ratio"] = result["c32_ratio"]
    out["serve.c32_ratio_100_tasks"] = result["c32_ratio_100_tasks"]
    many = result["many_tasks"]
    out["serve.mem_5_tasks_mb"] = round(result["mem_5_tasks"]["rss_mb"], 1)
    out[f"serve.mem_{many}_tasks_mb"] = round(result[f"mem_{many}_tasks"]["rss_mb"], 1)
    out["serve.packed_extra_mb"] = result["packed_extra_mb"]
    rows = [result[f"c{c}"] for c in (1, 8, 32, 128)] + [result["c32_100_tasks"]]
    out["serve.errors"] = sum(r["errors"] - r["refused_503"] for r in rows)
    out["serve.lost"] = sum(r["lost"] for r in rows)
    out["serve.wrong_task"] = sum(r["wrong_task"] for r in rows)
    out["serve.refused_503"] = sum(r["refused_503"] for r in rows)
    out["serve.peft_errors_and_lost"] = sum(
        r["errors"] + r["lost"] for r in result["peft"].values()
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--peft-server", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backbone", default="minilm-l6", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peft_server is not None:
        import uvicorn

        torch.set_num_threads(THREADS)
        uvicorn.run(
            peft_app(args.backbone, args.tasks),
            host="127.0.0.1",
            port=args.peft_server,
            log_level="warning",
        )
        return
    out = args.out or (RESULTS if not args.smoke else RESULTS / "smoke")
    result = run(args.smoke)
    write_json(out / "serve_load.json", result)
    for key, value in flat(result).items():
        print(f"{key}: {value}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
