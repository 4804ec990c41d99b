"""The "Serving many tasks to many users" section of docs/BENCHMARKS.md (bench/serve_load.py)."""

from __future__ import annotations

from typing import Any


def _load(result: dict) -> str:
    """The load average at the start, when the run recorded it."""
    load = result.get("load_average")
    return f" (load average {load:.1f} when the run started)" if load is not None else ""


def _f(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def serve_load_lines(result: dict[str, Any]) -> list[str]:
    many = result["many_tasks"]
    mem5, mem_many = result["mem_5_tasks"], result[f"mem_{many}_tasks"]
    lines = [
        "## Serving many tasks to many users (batching across tasks)",
        "",
        f"`python -m bench.serve_load`: {result['backbone']} adapter prototype (bottleneck 64, "
        "keep 0.5, random masks and heads), max length 64, one text per request, requests "
        "spread over the tasks, through a real `propetl serve` over loopback HTTP "
        f"(`PROPETL_SERVE_MAX_BATCH={result['settings']['serve_max_batch']}`, "
        f"`PROPETL_SERVE_MAX_WAIT_MS={result['settings']['serve_max_wait_ms']}`). "
        f"{result['rounds']} rounds; each round measures offline, every concurrency, 100 "
        "tasks and the PEFT reference back to back, and the figures are medians over rounds "
        "(a ratio: the median of each round's ratio, both sides measured minutes apart at "
        f"most). The machine has 2 CPU cores{_load(result)}, and the load generator (aiohttp, "
        "one process) runs on the same cores: absolute rates move with other work, so compare "
        "within this table only. Every measured process runs one torch thread "
        f"(`OMP_NUM_THREADS={result.get('torch_threads', 1)}`: two OpenMP threads that wait on "
        "each other on busy shared cores ran 5x slower). The server keeps up to "
        f"{result['settings'].get('serve_task_cache', 64)} tasks materialised "
        "(`PROPETL_SERVE_TASK_CACHE`, above the 100-task working set; with the default 64 a "
        "cycle over 100 tasks misses the LRU cache on every batch and an earlier run measured "
        "a 100-task ratio of 0.376); the memory rows use the default, 64.",
        "",
        "| load | ProPETL batched: req/s | p50 ms | p99 ms | PEFT one at a time: req/s | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for c in (1, 8, 32, 128):
        ours, peft = result[f"c{c}"], result["peft"][f"c{c}"]
        lines.append(
            f"| {c} clients, 5 tasks | {_f(ours['rps'])} | {_f(ours['p50_ms'])} | "
            f"{_f(ours['p99_ms'])} | {_f(peft['rps'])} | {_f(peft['p99_ms'])} |"
        )
    hundred = result["c32_100_tasks"]
    lines += [
        f"| 32 clients, 100 tasks | {_f(hundred['rps'])} | {_f(hundred['p50_ms'])} | "
        f"{_f(hundred['p99_ms'])} | | |",
        "",
    ]
    rows = [result[f"c{c}"] for c in (1, 8, 32, 128)] + [hundred]
    errors = sum(r["errors"] - r["refused_503"] for r in rows)
    lines += [
        "| figure | value | target |",
        "|---|---|---|",
        f"| offline samples/s (mixed batches of 32, 5 tasks, in-process) | "
        f"{_f(result['offline_sps'])} | |",
        f"| `serve.c32_ratio` (c32 req/s / offline samples/s) | {result['c32_ratio']:.3f} | "
        ">= 0.7 |",
        f"| `serve.c32_ratio_100_tasks` | {result['c32_ratio_100_tasks']:.3f} | >= 0.9 x the "
        f"5-task ratio ({0.9 * result['c32_ratio']:.3f}) |",
        f"| memory, 5 tasks (RSS after answering every task) | {_f(mem5['rss_mb'])} MB | |",
        f"| memory, {many:,} tasks | {_f(mem_many['rss_mb'])} MB | difference <= 1.5 x packed "
        "masks + cache bound |",
        f"| packed mask bytes of the extra {many - 5:,} tasks | {_f(result['packed_extra_mb'])} "
        f"MB | |",
        f"| materialised tasks kept (cache bound) | {mem_many['materialised_tasks']} | |",
        f"| of which tensors: packed masks / heads / materialised, {many:,} tasks | "
        f"{_f(mem_many['packed_mask_mb'])} / {_f(mem_many.get('heads_mb'))} / "
        f"{_f(mem_many.get('materialised_mb'))} MB | |",
        f"| load of the {many:,}-task prototype | {_f(mem_many['load_ms'] / 1e3)} s | |",
        f"| errors / lost / wrong task's answer | {errors} / "
        f"{sum(r['lost'] for r in rows)} / {sum(r['wrong_task'] for r in rows)} | 0 |",
        f"| PEFT reference errors / lost | "
        f"{sum(r['errors'] for r in result['peft'].values())} / "
        f"{sum(r['lost'] for r in result['peft'].values())} | 0 |",
        f"| 503 (queue bound {512} per prototype) | {sum(r['refused_503'] for r in rows)} | "
        "only above the bound |",
        "",
    ]
    ours, peft = result["c32"]["rps"], result["peft"]["c32"]["rps"]
    lead = "batched ProPETL" if ours >= peft else "the PEFT reference"
    lost = sum(r["lost"] for r in rows) + errors
    examples = sorted({e for r in rows for e in r.get("error_examples", [])})
    fate = (
        "No request was lost or answered with an error, at any concurrency."
        if not lost
        else f"{lost} request(s) were lost or failed ({'; '.join(examples[:2])})."
    )
    extra = mem_many["rss_mb"] - mem5["rss_mb"]
    tensors = (
        result["packed_extra_mb"]
        + (mem_many.get("heads_mb") or 0)
        - (mem5.get("heads_mb") or 0)
        + (mem_many.get("materialised_mb") or 0)
        - (mem5.get("materialised_mb") or 0)
    )
    per_task_kb = (extra - tensors) * 1024 / max(many - 5, 1)
    lines += [
        f"At 32 clients {lead} answered more requests/s ({ours} against {peft}); batched "
        f"ProPETL went {ours / max(result['c1']['rps'], 1e-9):.1f}x from 1 to 32 clients, the "
        f"one-at-a-time reference {peft / max(result['peft']['c1']['rps'], 1e-9):.1f}x. The "
        "reference is a bare FastAPI app (no registry, login, access checks or dashboard); "
        "each ProPETL request also passes the access check and the task-list check (read from "
        "the registry at most once a second, `PROPETL_SERVE_RECHECK_S`) and waits at most "
        "5 ms for company. 100 tasks against 5 "
        f"({result['c32_100_tasks']['rps'] / max(ours, 1e-9):.2f}x): a batch spread over 100 "
        "tasks runs one adapter product per task it holds (up to 32) where 5 tasks need 5; "
        "what the row shows is that 100 tasks do not cost a materialised prototype each. "
        f"{fate} The memory difference beyond the tensors is the Python objects of the tasks' "
        f"mask modules and heads, about {per_task_kb:.0f} KB a task "
        f"({extra:.1f} MB in all against {tensors:.1f} MB of tensors).",
        "",
    ]
    return lines
