"""The viewer's ASGI app: server-rendered pages over a read-only store.

Routes (all GET, all read-only):
    /                                         runs
    /runs/{run}                               one run: config, counts, pass rates, plots, exports
    /runs/{run}/episodes?env&task&status&…    the episode table (keyset pages, filters, search)
    /runs/{run}/episodes/{id}                 one episode: turns, verifier, diff, why
    /runs/{run}/episodes/{id}.json            the stored episode as JSON (no token arrays)
    /runs/{run}/episodes/{id}/tokens          the merged token sequence
    /runs/{run}/episodes/{id}/artifacts/{n}   the n-th artifact the verifier recorded
    /runs/{run}/groups[?variance=none|some]   per-task reward spread (GRPO signal)
    /runs/{run}/groups/{task}                 a task's samples side by side
    /runs/{run}/export/{format}               an export, streamed as a download

Every response carries `Server-Timing: app;dur=MS` (the benchmark reads it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalogue import store_url as resolve_url
from envs.status import STATUSES, TRAINABLE
from orchestrator.viewer import plots, present, queries
from orchestrator.viewer.source import ReadOnlyStore, has_table, readonly_engine
from orchestrator.viewer.tokens import (
    call_marks,
    load_decoder,
    render_spans,
    run_tokenizer,
    token_view,
)

_HERE = Path(__file__).parent
Statuses = Annotated[list[str] | None, Query()]
"""A repeatable `?status=` parameter."""


class ViewerConfig(BaseModel):
    """What `envfarm view` serves."""

    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(None, description="SQLAlchemy URL; default $ENVFARM_STORE / envfarm.db.")
    artifacts_roots: list[Path] = Field(
        default_factory=lambda: [Path(os.environ.get("ENVFARM_ARTIFACTS", "artifacts"))],
        description="Only files under these folders are served as artifacts.")
    tokenizer: str | None = Field(None, description="Tokenizer dir overriding the runs' own.")
    page_size: int = Field(50, ge=1, le=1000, description="Episodes per table page.")
    tokens_per_page: int = Field(20_000, ge=100, description="Tokens per token page.")
    cache_summaries: bool = Field(
        True, description="Keep each run's summary until the run gains or replaces an episode.")
    warm_runs: int = Field(
        5, ge=0, description="Summaries of this many newest runs computed at start, in the "
        "background, so their first view is served from the cache.")
    live_summary_s: float = Field(
        10.0, ge=0, description="A live run's summary is recomputed at most this often.")


def create_app(config: ViewerConfig | None = None) -> FastAPI:
    """The app over `config.store`. Raises StoreNotFoundError when there is no store."""
    config = config or ViewerConfig()
    engine = readonly_engine(config.store)
    store_url = resolve_url(config.store)
    app = FastAPI(title="envfarm view", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.config = engine, config
    templates = Jinja2Templates(directory=_HERE / "templates")
    templates.env.globals.update(STATUSES=STATUSES, TRAINABLE=TRAINABLE, present=present)
    templates.env.filters.update(reward=_reward, secs=_secs, pct=_pct)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    summaries: dict[str, tuple[Any, Any]] = {}
    lock = threading.Lock()
    roots = [r.expanduser().resolve() for r in config.artifacts_roots]

    @app.middleware("http")
    async def _timing(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1e3:.1f}"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _error(request: Request, exc: StarletteHTTPException) -> Response:
        """A page for people (the request accepts HTML), JSON for scripts."""
        if "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return templates.TemplateResponse(request, "error.html", {
            "store_url": _safe_url(store_url), "code": exc.status_code, "detail": exc.detail},
            status_code=exc.status_code)

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"store_url": _safe_url(store_url),
                                                          **context})

    def need_run(run_id: str) -> dict[str, Any]:
        run = queries.get_run(engine, run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} in this store")
        return run

    def summarize(run_id: str) -> tuple[Any, tuple[int, int | None]]:
        """The run's summary: cached until the run gains or replaces an episode, and at
        most `live_summary_s` old while it is live."""
        version = queries.run_version(engine, run_id)
        with lock:
            cached = summaries.get(run_id) if config.cache_summaries else None
        if cached is not None and (cached[0] == version
                                   or time.monotonic() - cached[1] < config.live_summary_s):
            return cached[2], version
        summary = queries.run_summary(engine, run_id, with_sources=has_table(engine, "tasks"))
        if summary is not None:
            with lock:
                summaries[run_id] = (version, time.monotonic(), summary)
        return summary, version

    def warm() -> None:
        for run in queries.list_runs(engine)[:config.warm_runs]:
            summarize(run["id"])

    if config.cache_summaries and config.warm_runs:
        threading.Thread(target=warm, name="envfarm-view-warm", daemon=True).start()

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return page(request, "index.html", runs=queries.list_runs(engine))

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str) -> HTMLResponse:
        summary, version = summarize(run_id)
        if summary is None:
            raise HTTPException(404, f"no run {run_id!r} in this store")
        stale = version[0] - summary.total
        from orchestrator.export import EXPORTERS

        return page(request, "run.html", s=summary, run=summary.run,
                    histogram=plots.histogram_svg(summary.histogram),
                    timeline=plots.timeline_svg(summary.timeline),
                    exporters=EXPORTERS, store_arg=_store_arg(config.store), stale=stale,
                    has_catalogue=has_table(engine, "tasks"))

    @app.get("/runs/{run_id}/episodes", response_class=HTMLResponse)
    def episodes_page(request: Request, run_id: str, env: str | None = None,
                      task: str | None = None, status: Statuses = None,
                      min_reward: str | None = None, max_reward: str | None = None,
                      sample: str | None = None, q: str | None = None,
                      after: int | None = None, before: int | None = None) -> HTMLResponse:
        run = need_run(run_id)
        filt = queries.EpisodeFilter(
            env=env or None, task=(task or "").strip() or None,
            statuses=tuple(s for s in status or () if s in STATUSES),
            min_reward=_float(min_reward, "min_reward"), max_reward=_float(max_reward, "max_reward"),
            sample=_int(sample, "sample"), text=q or None)
        result = queries.list_episodes(engine, run_id, filt, after=after, before=before,
                                       limit=config.page_size)
        params = {k: v for k, v in {"env": env, "task": task, "min_reward": min_reward,
                                    "max_reward": max_reward, "sample": sample, "q": q}.items()
                  if v not in (None, "")}
        # Env choices come from the run's cached summary (a DISTINCT over env_id would
        # read every row of the run without an index on it) plus what this page shows.
        with lock:
            cached = summaries.get(run_id)
        envs = {r["key"] for r in cached[2].by_env} if cached else set()
        envs |= {r["env_id"] for r in result.rows} | ({filt.env} if filt.env else set())
        return page(request, "episodes.html", run=run, f=filt, p=result, params=params,
                    status_params=list(filt.statuses),
                    options={"envs": sorted(envs), "statuses": list(STATUSES)})

    @app.get("/runs/{run_id}/episodes/{episode_id:int}", response_class=HTMLResponse)
    def episode_page(request: Request, run_id: str, episode_id: int) -> HTMLResponse:
        run = need_run(run_id)
        ep = queries.get_episode(engine, run_id, episode_id)
        if ep is None:
            raise HTTPException(404, f"no episode {episode_id} in run {run_id}")
        details = ep.get("reward_details") or {}
        return page(request, "episode.html", run=run, ep=ep, details=details,
                    turns=present.turns(ep.get("messages") or [], ep["calls"]),
                    why=present.explanation(ep), tests=present.test_outcomes(details),
                    checks=details.get("checks") if isinstance(details.get("checks"), list)
                    else [], media=present.media(details),
                    diff=present.diff_lines(details["patch"])
                    if isinstance(details.get("patch"), str) and details["patch"] else None,
                    rest=present.remaining_details(details),
                    n_tokens=len(ep.get("token_ids") or b"") // 4)

    @app.get("/runs/{run_id}/episodes/{episode_id}.json")
    def episode_json(run_id: str, episode_id: int) -> JSONResponse:
        """The stored episode as JSON (token arrays and calls left out: see /tokens)."""
        ep = queries.get_episode(engine, run_id, episode_id)
        if ep is None:
            raise HTTPException(404, f"no episode {episode_id} in run {run_id}")
        blobs = ("token_ids", "loss_mask", "token_logprobs", "teacher_logprobs", "neighbours")
        return JSONResponse(jsonable_encoder({k: v for k, v in ep.items() if k not in blobs}))

    @app.get("/runs/{run_id}/episodes/{episode_id}/tokens", response_class=HTMLResponse)
    def tokens_page(request: Request, run_id: str, episode_id: int,
                    start: int = Query(0, ge=0)) -> HTMLResponse:
        run = need_run(run_id)
        row = queries.token_arrays(engine, run_id, episode_id)
        if row is None:
            raise HTTPException(404, f"no episode {episode_id} in run {run_id}")
        path = run_tokenizer(run.get("config"), config.tokenizer)
        decoder = load_decoder(path) if path else None
        view = token_view(row, decoder, start=start, limit=config.tokens_per_page)
        data = {"lp": view.lp, "tlp": view.tlp, "adv": view.adv}
        marks = call_marks(queries.call_sizes(engine, episode_id), view) \
            if row["prefix_consistent"] else {}
        return page(request, "tokens.html", run=run, ep=row, v=view, tokenizer_path=path,
                    per_page=config.tokens_per_page, data=data,
                    spans=render_spans(view, marks))

    @app.get("/runs/{run_id}/episodes/{episode_id}/artifacts/{n}")
    def artifact(run_id: str, episode_id: int, n: int) -> FileResponse:
        ep = queries.get_episode(engine, run_id, episode_id)
        paths = present.artifact_paths((ep or {}).get("reward_details") or {})
        if not 0 <= n < len(paths):
            raise HTTPException(404, "no such artifact")
        path = Path(paths[n]).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            raise HTTPException(403, f"{path} is outside the artifacts folders "
                                "(envfarm view --artifacts DIR)")
        if not path.is_file():
            raise HTTPException(404, f"{path} is gone")
        return FileResponse(path)

    @app.get("/runs/{run_id}/groups", response_class=HTMLResponse)
    def groups_page(request: Request, run_id: str, after: str | None = None,
                    variance: str | None = None) -> HTMLResponse:
        run = need_run(run_id)
        variance = variance if variance in ("none", "some") else None
        rows, next_after = queries.list_groups(engine, run_id, after=after, variance=variance,
                                               limit=config.page_size)
        return page(request, "groups.html", run=run, rows=rows, next_after=next_after,
                    variance=variance)

    @app.get("/runs/{run_id}/groups/{task_id:path}", response_class=HTMLResponse)
    def group_page(request: Request, run_id: str, task_id: str) -> HTMLResponse:
        run = need_run(run_id)
        samples = queries.get_group(engine, run_id, task_id)
        if not samples:
            raise HTTPException(404, f"no episodes of {task_id!r} in run {run_id}")
        for s in samples:
            s["turns"] = present.turns(s.get("messages") or [], [])
        scored = [s["reward"] for s in samples
                  if s["status"] in TRAINABLE and s["reward"] is not None]
        return page(request, "group.html", run=run, task_id=task_id, samples=samples,
                    spread=(min(scored), max(scored)) if scored else None)

    @app.get("/runs/{run_id}/export/{fmt}")
    def export_download(run_id: str, fmt: str, status: Statuses = None) -> FileResponse:
        from orchestrator.export import EXPORTERS, ExportFilter, export

        need_run(run_id)
        if fmt not in EXPORTERS:
            raise HTTPException(404, f"no export format {fmt!r}; one of {', '.join(EXPORTERS)}")
        tmp = Path(tempfile.mkdtemp(prefix="envfarm-view-export-"))
        name = f"{run_id}{EXPORTERS[fmt].suffix}"
        try:
            export(ReadOnlyStore(engine, store_url), run_id, fmt, tmp / name,
                   ExportFilter(statuses=tuple(status or ("ok",))))
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise HTTPException(400, f"export failed: {exc}") from exc
        return FileResponse(tmp / name, filename=name,
                            background=BackgroundTask(shutil.rmtree, tmp, True))

    return app


def _float(value: str | None, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise HTTPException(400, f"{name} must be a number, not {value!r}") from None


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number, not {value!r}") from None


def _safe_url(url: str) -> str:
    """The store URL without its password, for display."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 — display only
        return "?"


def _store_arg(store: str | None) -> str:
    """` --store URL` for the command lines shown (its password masked)."""
    return f" --store {_safe_url(store)}" if store else ""


def _reward(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


def _secs(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "—"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"
