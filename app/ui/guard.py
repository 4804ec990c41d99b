"""Every dashboard event runs as its logged-in user, through the access policy.

`install(demo)` wraps each event function of the page so that it receives the event's
`gr.Request` and runs with that user as the current one. `registry()` and `engine()` of
`app.ui.common` answer through `app.access.Access` for that user: another user's jobs,
sweeps and prototypes are "not found" exactly as in the REST API, and lists hold only the
caller's. This holds for every event, public or private, called by the page, by
`gradio_client` or by hand through the queue: the check sits under the handler, not in the
page. Outside an event (unit tests, start-up) there is no user: with login off everything is
visible, with login on nothing is.
"""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import Any, get_type_hints

import gradio as gr

from ..access import Access
from ..auth import Auth
from ..registry import NotFoundError, Registry, get_registry

_USER: ContextVar[str | None] = ContextVar("propetl_dashboard_user", default=None)
_AUTH: ContextVar[Auth | None] = ContextVar("propetl_dashboard_auth", default=None)


def current_access(registry: Registry | None = None) -> Access:
    """The access of the event being handled (see the module's doc)."""
    auth = _AUTH.get()
    if auth is None:
        from ..auth import get_auth

        auth = get_auth()
    return Access.of(auth, _USER.get(), registry)


class ScopedRegistry:
    """The registry as the current user may see it: the reads and actions the dashboard
    uses, each through `Access`; everything else is the registry's own."""

    def __init__(self, access: Access) -> None:
        self._access = access
        self._registry = access.registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def list_jobs(
        self,
        *,
        status: str | None = None,
        owner: str | None = None,
        sweep_id: int | None = None,
        limit: int = 100,
    ) -> list[Any]:
        return self._access.jobs(status=status, owner=owner, sweep_id=sweep_id, limit=limit)

    def get_job(self, job_id: int) -> Any:
        return self._access.job(job_id)

    def metric_series(self, job_id: int, **kwargs: Any) -> Any:
        self._access.job(job_id)
        return self._registry.metric_series(job_id, **kwargs)

    def count_metric_points(self, job_id: int) -> int:
        self._access.job(job_id)
        return self._registry.count_metric_points(job_id)

    def request_cancel(self, job_id: int) -> Any:
        self._access.job(job_id)
        return self._registry.request_cancel(job_id)

    def retry(self, job_id: int) -> Any:
        self._access.job(job_id)
        return self._registry.retry(job_id)

    def list_sweeps(self, *, owner: str | None = None, limit: int = 100) -> list[Any]:
        return self._access.sweeps(owner=owner, limit=limit)

    def get_sweep(self, sweep_id: int) -> Any:
        return self._access.sweep(sweep_id)

    def list_prototypes(self, *, backbone: str | None = None) -> list[Any]:
        return self._access.prototypes(backbone=backbone)

    def get_prototype(self, uid: str) -> Any:
        return self._access.prototype(uid)

    def prototype_for_job(self, job_id: int) -> Any:
        self._access.job(job_id)
        return self._registry.prototype_for_job(job_id)

    def list_mask_sets(
        self, *, prototype_uid: str | None = None, task: str | None = None
    ) -> list[Any]:
        if prototype_uid:
            prototype_uid = self._access.prototype(prototype_uid).uid
            return self._registry.list_mask_sets(prototype_uid=prototype_uid, task=task)
        mine = {p.uid for p in self._access.prototypes()}
        return [m for m in self._registry.list_mask_sets(task=task) if m.prototype.uid in mine]

    def delete_mask_set(self, mask_set_id: int, **kwargs: Any) -> None:
        found = [m for m in self._registry.list_mask_sets() if m.id == mask_set_id]
        if not found:
            raise NotFoundError(f"no mask set {mask_set_id}")
        self._access.prototype(found[0].prototype.uid)  # NotFoundError for another's
        self._registry.delete_mask_set(mask_set_id, **kwargs)


class ScopedEngine:
    """The playground engine for the current user: a prototype id is first looked up through
    `Access` (another's is "no prototype"; a unique prefix becomes the full id)."""

    _BY_UID = frozenset(
        {
            "model",
            "tasks_of",
            "predict",
            "predict_mixed",
            "is_generative",
            "stream",
            "forget",
            "load",
        }
    )

    def __init__(self, access: Access, engine: Any) -> None:
        self._access = access
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._engine, name)
        if name not in self._BY_UID or not callable(method):
            return method

        def checked(uid: str, *args: Any, **kwargs: Any) -> Any:
            return method(self._access.prototype(uid).uid, *args, **kwargs)

        return checked


def _request_positions(fn: Any) -> list[int]:
    """Positions of `fn`'s own `gr.Request` parameters (Gradio fills them in)."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        hints = get_type_hints(fn)
    except Exception:
        return []
    return [i for i, p in enumerate(params) if hints.get(p.name) in (gr.Request, gr.Request | None)]


def _has_event_data(fn: Any) -> bool:
    try:
        hints = get_type_hints(fn)
    except Exception:
        return False
    return any(inspect.isclass(h) and issubclass(h, gr.EventData) for h in hints.values())


def _wrap(fn: Any, auth: Auth) -> Any:
    positions = _request_positions(fn)

    def call_args(request: Any, args: tuple[Any, ...]) -> list[Any]:
        out = list(args)
        for i in positions:
            out.insert(i, request)
        return out

    def enter(request: Any) -> tuple[Any, Any]:
        return _USER.set(getattr(request, "username", None)), _AUTH.set(auth)

    def leave(tokens: tuple[Any, Any]) -> None:
        _USER.reset(tokens[0])
        _AUTH.reset(tokens[1])

    if inspect.isgeneratorfunction(fn):

        def wrapper(request: gr.Request, *args: Any) -> Any:
            tokens = enter(request)
            try:
                inner = fn(*call_args(request, args))
            finally:
                leave(tokens)
            while True:
                tokens = enter(request)
                try:
                    value = next(inner)
                except StopIteration:
                    return
                finally:
                    leave(tokens)
                yield value
    elif inspect.iscoroutinefunction(fn):

        async def wrapper(request: gr.Request, *args: Any) -> Any:  # type: ignore[misc]
            tokens = enter(request)
            try:
                return await fn(*call_args(request, args))
            finally:
                leave(tokens)
    elif inspect.isasyncgenfunction(fn):
        return fn  # none in the dashboard; left as they are
    else:

        def wrapper(request: gr.Request, *args: Any) -> Any:  # type: ignore[misc]
            tokens = enter(request)
            try:
                return fn(*call_args(request, args))
            finally:
                leave(tokens)

    wrapper.__name__ = getattr(fn, "__name__", "handler")
    wrapper.__doc__ = getattr(fn, "__doc__", None)
    wrapper.__propetl_guarded__ = True  # type: ignore[attr-defined]
    return wrapper


def install(demo: gr.Blocks, auth: Auth) -> int:
    """Wrap every event function of `demo` (returns how many were wrapped). Functions that
    take Gradio's event data (`gr.SelectData`) are left alone: they must not read the
    registry (they only turn a click into an id, which a guarded handler then opens)."""
    wrapped = 0
    for block_fn in demo.fns.values():
        fn = block_fn.fn
        if fn is None or getattr(fn, "__propetl_guarded__", False) or _has_event_data(fn):
            continue
        block_fn.fn = _wrap(fn, auth)
        wrapped += 1
    return wrapped


def scoped_registry() -> ScopedRegistry:
    return ScopedRegistry(current_access(get_registry()))
