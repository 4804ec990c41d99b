"""The playground engine: load a prototype once, then answer any of its tasks by mask swap.

Loaded prototypes are kept in a small LRU cache keyed by (uid, tasks), so deleting a
task's masks gives a fresh load. Classification requests go through the prototype's batcher
(`app.serving`): concurrent requests, whatever their tasks, are answered by one mixed-task
forward. Every call reports the measured queue and inference time.
A prototype over a generative backbone (T5, Llama families) answers with generated text,
which `stream` hands out piece by piece with the token rate.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import NotFoundError, Registry, get_registry
from .serving import Answer, Serving

ALL_TASKS = "all tasks"


class PlaygroundError(ValueError):
    """A request the loaded prototype cannot answer (unknown task, empty text)."""


@dataclass
class Loaded:
    """A prototype ready for inference."""

    uid: str
    backbone: str
    tasks: list[str]
    model: Any
    predictor: Any  # propetl's Predictor, or its Generator for a generative backbone
    load_ms: float
    generative: bool = False


@dataclass
class Prediction:
    """Answers for one request and how long each part took."""

    results: list[dict[str, Any]]
    swap_ms: float
    inference_ms: float
    mode: str  # "single" (one task) or "mixed" (the request's texts name several tasks)
    load_ms: float = 0.0
    tasks: list[str] = field(default_factory=list)
    queue_ms: float = 0.0  # waiting for the batch it was answered in
    batch_texts: int = 0  # texts in that batch (other requests' too)
    batch_requests: int = 0  # requests in that batch


@dataclass
class Pending:
    """A request accepted by a prototype's batcher: `future` gives its `Answer`, `finish`
    turns that into the `Prediction`. An async caller awaits the future without holding a
    thread (`asyncio.wrap_future`); `wait` blocks for it."""

    future: Future[Answer]
    mode: str
    load_ms: float
    tasks: list[str]

    @classmethod
    def done(cls, prediction: Prediction) -> Pending:
        """A request answered already (generation runs while it is submitted)."""
        future: Future[Answer] = Future()
        future.set_result(Answer(prediction.results, 0.0, prediction.inference_ms, 0, 0, 0))
        return cls(future, prediction.mode, prediction.load_ms, prediction.tasks)

    def finish(self, answer: Answer) -> Prediction:
        return Prediction(
            answer.results,
            0.0,
            answer.inference_ms,
            self.mode,
            self.load_ms,
            self.tasks,
            answer.queue_ms,
            answer.batch_texts,
            answer.batch_requests,
        )

    def wait(self) -> Prediction:
        return self.finish(self.future.result())


class PlaygroundEngine:
    """Loads prototypes from the registry's artifacts and predicts with them (thread-safe)."""

    def __init__(
        self,
        registry: Callable[[], Registry] = get_registry,
        capacity: int = 2,
        serving: Serving | None = None,
        task_cache: int | None = None,
        recheck_s: float | None = None,
    ) -> None:
        self._registry = registry
        self._capacity = capacity
        self._cache: OrderedDict[tuple[str, tuple[str, ...]], Loaded] = OrderedDict()
        self._lock = threading.RLock()
        self._serving = serving
        self._task_cache = task_cache
        self._loading: dict[str, threading.Lock] = {}
        self._recheck = recheck_s
        # registry reads of the predict path, each kept `recheck_s`: uid -> (when, value)
        self._tasks_seen: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._owners_seen: dict[str, tuple[float, str | None]] = {}

    @property
    def serving(self) -> Serving:
        """The batchers of the loaded prototypes (from the settings unless given)."""
        if self._serving is None:
            self._serving = Serving.from_settings()
        return self._serving

    def tasks_of(self, uid: str) -> list[str]:
        """Tasks of a prototype whose masks are on disk."""
        proto = self._registry().get_prototype(uid)
        return [m.task.name for m in proto.mask_sets if Path(m.artifact_path).is_dir()]

    @property
    def recheck_s(self) -> float:
        """How long a prototype's owner and task list read from the registry are trusted."""
        if self._recheck is None:
            from .settings import get_settings

            self._recheck = get_settings().serve_recheck_s
        return self._recheck

    def prototype_owner(self, uid: str) -> tuple[bool, str | None]:
        """`Registry.prototype_owner`, an existing prototype's kept `recheck_s` (a prototype's
        owner never changes; one not found is looked up again on the next request)."""
        now = time.monotonic()
        seen = self._owners_seen.get(uid)
        if seen is not None and now - seen[0] < self.recheck_s:
            return True, seen[1]
        found, owner = self._registry().prototype_owner(uid)
        if found:
            self._owners_seen[uid] = (now, owner)
        return found, owner

    def served_tasks(self, uid: str, need: Sequence[str] = ()) -> tuple[str, ...]:
        """The prototype's tasks whose masks are on disk, in order. Read from the registry at
        most every `recheck_s`, and at once when the request names a task not in the list
        read last, so a task added by a worker answers at once."""
        now = time.monotonic()
        seen = self._tasks_seen.get(uid)
        if seen is not None and now - seen[0] < self.recheck_s and set(need) <= set(seen[1]):
            return seen[1]
        # only the task list is read (not the whole prototype)
        tasks = tuple(
            name for name, path in self._registry().served_tasks(uid) if Path(path).is_dir()
        )
        self._tasks_seen[uid] = (now, tasks)
        return tasks

    def load(self, uid: str, need: Sequence[str] = ()) -> tuple[Loaded, float]:
        """The loaded prototype and the ms spent loading it now (0 when cached); `need`: the
        tasks the request names."""
        from propetl.backbones import load_tokenizer
        from propetl.inference import Generator, Predictor
        from propetl.model import ProPETLModel

        tasks = self.served_tasks(uid, need)
        if not tasks:
            raise PlaygroundError(f"prototype {uid[:8]} has no task masks left")
        key = (uid, tasks)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key], 0.0
            gate = self._loading.setdefault(uid, threading.Lock())
        with gate:  # one load per prototype at a time; others are served meanwhile
            with self._lock:
                if key in self._cache:
                    return self._cache[key], 0.0
            proto = self._registry().get_prototype(uid)
            started = time.perf_counter()
            model = ProPETLModel.from_pretrained(proto.artifact_path, tasks=list(tasks))
            self._bound_materialised(model)
            tokenizer = load_tokenizer(proto.backbone.name)
            max_length = int((proto.train_config or {}).get("max_length") or 128)
            generative = model.family.generative
            predictor = (Generator if generative else Predictor)(
                model, tokenizer, max_length=max_length
            )
            load_ms = (time.perf_counter() - started) * 1e3
            loaded = Loaded(
                uid, proto.backbone.name, list(tasks), model, predictor, load_ms, generative
            )
            with self._lock:
                for old in [k for k in self._cache if k[0] == uid]:
                    del self._cache[old]
                self._cache[key] = loaded
                while len(self._cache) > self._capacity:
                    (old_uid, _), _ = self._cache.popitem(last=False)
                    self.serving.forget(old_uid)  # its batcher (and model) go with it
            return loaded, load_ms

    def _bound_materialised(self, model: Any) -> None:
        """Keep at most `serve_task_cache` tasks materialised; the rest stay bit-packed."""
        if self._task_cache is None:
            from .settings import get_settings

            self._task_cache = get_settings().serve_task_cache
        for bank in model.banks.values():
            bank.cache_limit = self._task_cache

    def _batched(
        self,
        loaded: Loaded,
        items: list[tuple[str, tuple[str, str | None]]],
        mode: str,
        load_ms: float,
    ) -> Pending:
        """Queue `items` for the prototype's next batch (with other requests' texts)."""
        batcher = self.serving.batcher(loaded.uid, loaded, loaded.predictor.predict_mixed)
        return Pending(batcher.submit(items), mode, load_ms, loaded.tasks)

    def predict(self, uid: str, task: str, text: str, pair: str | None = None) -> Prediction:
        """One text for one task, or for every task at once with `task="all tasks"`."""
        return self.submit(uid, task, text, pair).wait()

    def submit(self, uid: str, task: str, text: str, pair: str | None = None) -> Pending:
        """`predict` without waiting: the checks run now, the answer comes with its batch."""
        if not text or not text.strip():
            raise PlaygroundError("type a text first")
        pair = pair.strip() if pair and pair.strip() else None
        loaded, load_ms = self.load(uid, () if task == ALL_TASKS else (task,))
        if loaded.generative:
            return Pending.done(self._generate(loaded, task, text, load_ms))
        if task == ALL_TASKS:
            return self.submit_mixed(uid, [(t, text, pair) for t in loaded.tasks], load_ms)
        self._check(loaded, task)
        return self._batched(loaded, [(task, (text, pair))], "single", load_ms)

    @staticmethod
    def _check(loaded: Loaded, task: str) -> None:
        if task not in loaded.tasks:
            raise PlaygroundError(
                f"unknown task {task!r}; this prototype has: " + ", ".join(loaded.tasks)
            )

    def _generate(self, loaded: Loaded, task: str, text: str, load_ms: float) -> Prediction:
        tasks = loaded.tasks if task == ALL_TASKS else [task]
        results, inference_ms = [], 0.0
        for name in tasks:
            self._check(loaded, name)
            # one generation at a time (the Generator's own lock), never under the engine's
            # lock: classification and other prototypes go on meanwhile
            results += loaded.predictor.generate(name, [text])
            inference_ms += loaded.predictor.last_timing.inference_ms
        return Prediction(results, 0.0, inference_ms, "single", load_ms, loaded.tasks)

    def is_generative(self, uid: str) -> bool:
        """Whether the prototype answers with generated text."""
        return self.load(uid)[0].generative

    def stream(self, uid: str, task: str, text: str) -> Iterator[Any]:
        """Generated text of one task, piece by piece (propetl's `Chunk`: text so far, tokens,
        tokens per second, done)."""
        if not text or not text.strip():
            raise PlaygroundError("type a text first")
        loaded, _ = self.load(uid, (task,))
        if not loaded.generative:
            raise PlaygroundError(f"prototype {uid[:8]} classifies; it does not generate text")
        self._check(loaded, task)
        yield from loaded.predictor.stream(task, text)  # the generator serialises its calls

    def predict_mixed(
        self, uid: str, requests: Sequence[tuple[str, str, str | None]], load_ms: float = 0.0
    ) -> Prediction:
        """One batch whose examples each name their own task."""
        return self.submit_mixed(uid, requests, load_ms).wait()

    def submit_mixed(
        self, uid: str, requests: Sequence[tuple[str, str, str | None]], load_ms: float = 0.0
    ) -> Pending:
        """`predict_mixed` without waiting."""
        loaded, extra = self.load(uid, sorted({t for t, _, _ in requests}))
        if loaded.generative:
            raise PlaygroundError("a generative prototype answers one task at a time")
        unknown = sorted({t for t, _, _ in requests} - set(loaded.tasks))
        if unknown:
            raise PlaygroundError(
                f"unknown task(s) {', '.join(unknown)}; this prototype has: "
                + ", ".join(loaded.tasks)
            )
        if not requests:
            raise PlaygroundError("nothing to predict")
        return self._batched(
            loaded, [(t, (x, p)) for t, x, p in requests], "mixed", load_ms + extra
        )

    def model(self, uid: str) -> Any:
        """The loaded ProPETL model of a prototype (for mask statistics)."""
        return self.load(uid)[0].model

    def forget(self, uid: str) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[0] == uid]:
                del self._cache[key]
            self._tasks_seen.pop(uid, None)
            self._owners_seen.pop(uid, None)
        self.serving.forget(uid)


_engine: PlaygroundEngine | None = None


def get_engine() -> PlaygroundEngine:
    """The process-wide engine."""
    global _engine
    if _engine is None:
        _engine = PlaygroundEngine()
    return _engine


__all__ = [
    "ALL_TASKS",
    "NotFoundError",
    "Pending",
    "PlaygroundEngine",
    "PlaygroundError",
    "Prediction",
    "get_engine",
]
