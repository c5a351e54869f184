"""The viewer's pages over a real SQLite store, through its real ASGI app: what each
page shows is checked against the store, pages are walked with their own links, and
the store is never written."""

from __future__ import annotations

import hashlib
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from markupsafe import escape

from envs.status import STATUSES
from orchestrator.viewer import StoreNotFoundError, ViewerConfig, create_app, readonly_engine
from orchestrator.viewer.tokens import load_decoder
from tests.conftest import MODEL_DIR
from tests.viewer.conftest import shown_bytes, tokenized_record

RUN = "run-synthetic"


@pytest.fixture(scope="module")
def client(synthetic_store):
    return TestClient(create_app(ViewerConfig(store=synthetic_store.url, page_size=50)))


def all_episodes(store, run_id):
    return list(store.episodes(run_id, statuses=None, with_calls=False))


class Rows(HTMLParser):
    """data-* attributes of the <tr> rows of one table (by id)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows = table_id, False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.inside = attrs.get("id") == self.table_id
        elif tag == "tr" and self.inside and "data-id" in attrs:
            self.rows.append(attrs)


def rows(page: str, table_id: str = "episodes") -> list[dict]:
    parser = Rows(table_id)
    parser.feed(page)
    return parser.rows


def link(page: str, link_id: str) -> str | None:
    m = re.search(rf'<a id="{link_id}" href="([^"]+)"', page)
    return html.unescape(m.group(1)) if m else None


def test_runs_and_run_page_match_the_store(client, synthetic_store):
    store = synthetic_store.store
    counts = store.status_counts(RUN)
    index = client.get("/")
    assert index.status_code == 200 and f'href="/runs/{RUN}"' in index.text
    page = client.get(f"/runs/{RUN}").text
    for status in STATUSES:
        shown = re.search(rf'data-status="{status}"><a [^>]*>(\d+)</a>', page)
        assert shown and int(shown.group(1)) == counts.get(status, 0), status
    assert f'<td class="num" id="total">{sum(counts.values())}</td>' in page
    # pass rate per env: passed / scored, as the store's episodes say
    eps = all_episodes(store, RUN)
    for env in {e.env_id for e in eps}:
        scored = [e for e in eps if e.env_id == env and e.status in
                  ("ok", "agent_timeout", "max_turns", "context_exceeded", "tampered",
                   "agent_fault")]
        passed = sum(1 for e in scored if e.reward >= 1.0)
        assert re.search(rf"<td>{re.escape(env)}</td><td class=\"num\">\d+</td><td class=\"num\">"
                         rf"{len(scored)}</td><td class=\"num\">{passed}</td>", page), env
    bars = [int(n) for n in re.findall(r'class="bar" [^>]*data-count="(\d+)"', page)]
    assert sum(bars) == sum(1 for e in eps if e.reward is not None and e.status not in
                            ("task_error", "infra_error"))
    assert "envfarm export run-synthetic --format verl" in page
    assert client.get("/runs/nope").json() == {"detail": "no run 'nope' in this store"}
    shown = client.get("/runs/nope", headers={"accept": "text/html"})
    assert shown.status_code == 404 and 'id="error-detail"' in shown.text


def test_keyset_pages_cover_every_episode_once(client, synthetic_store):
    seen, url = [], f"/runs/{RUN}/episodes"
    while url:
        page = client.get(url).text
        seen += [int(r["data-id"]) for r in rows(page)]
        url = link(page, "next")
    assert seen == sorted(e.id for e in all_episodes(synthetic_store.store, RUN))
    back = client.get(f"/runs/{RUN}/episodes?before={seen[120]}").text
    assert [int(r["data-id"]) for r in rows(back)] == seen[70:120]


@pytest.mark.parametrize("query, keep", [
    ("status=ok&status=max_turns", lambda e: e.status in ("ok", "max_turns")),
    ("env=envfarm/webdev-v0&min_reward=0.2&max_reward=0.8",
     lambda e: e.env_id == "envfarm/webdev-v0" and e.reward is not None and 0.2 <= e.reward <= 0.8),
    ("sample=3&status=infra_error", lambda e: e.sample_index == 3 and e.status == "infra_error"),
    ("task=task-000007", lambda e: e.task_id == "task-000007"),
])
def test_filters_select_what_the_store_holds(client, synthetic_store, query, keep):
    expected = sorted(e.id for e in all_episodes(synthetic_store.store, RUN) if keep(e))
    seen, url = [], f"/runs/{RUN}/episodes?{query}"
    first = client.get(url).text
    assert f'<b id="match-count">{len(expected)}</b>' in first
    while url:
        page = client.get(url).text
        seen += [int(r["data-id"]) for r in rows(page)]
        url = link(page, "next")
    assert seen == expected


def test_text_search_scans_in_windows_and_finds_every_match(synthetic_store):
    from orchestrator.viewer import queries

    engine = readonly_engine(synthetic_store.url)
    eps = all_episodes(synthetic_store.store, RUN)
    word = "deadlock"
    expected = [e.id for e in eps if word in json.dumps(e.messages).lower()]
    assert 0 < len(expected) < len(eps)
    found, after, rounds = [], None, 0
    while True:  # a tiny window and no time budget: many partial pages, nothing lost
        page = queries.search_episodes(engine, RUN, queries.EpisodeFilter(text=word.upper()),
                                       after=after, limit=7, window=30, budget_s=0.0)
        found += [r["id"] for r in page.rows]
        rounds += 1
        if page.search_done:
            break
        after = page.next_after
    assert found == expected and rounds > 3
    quoted = queries.search_episodes(engine, RUN, queries.EpisodeFilter(
        text='{"command": "grep'), limit=5)
    assert quoted.rows, "text with quotes matches the stored (JSON-escaped) messages"


def test_episode_page_shows_turns_verifier_diff_and_why(client, synthetic_store):
    eps = all_episodes(synthetic_store.store, RUN)
    swe = next(e for e in eps if e.env_id == "envfarm/swe-v0" and e.status == "ok")
    page = client.get(f"/runs/{RUN}/episodes/{swe.id}").text
    assert page.count('<article class="turn') == len(swe.messages)
    assert page.count('<details class="reasoning">') == sum(
        1 for m in swe.messages if m.get("reasoning_content"))
    assert '<section id="diff">' in page and 'class="d-add"' in page and 'class="d-del"' in page
    for name in swe.reward_details["report"]["FAIL_TO_PASS"]:
        assert str(escape(name)) in page
    cut = next(e for e in eps if any("bytes truncated" in (m.get("content") or "")
                                     for m in e.messages))
    assert "48213 bytes truncated" in client.get(f"/runs/{RUN}/episodes/{cut.id}").text
    for status in ("infra_error", "task_error", "tampered", "agent_fault"):
        ep = next(e for e in eps if e.status == status)
        page = client.get(f"/runs/{RUN}/episodes/{ep.id}").text
        assert f"<h2>Why {status}</h2>" in page and str(escape(ep.error)) in page, status
    ok = next(e for e in eps if e.status == "ok")
    assert 'id="why"' not in client.get(f"/runs/{RUN}/episodes/{ok.id}").text


def test_groups_show_every_sample_and_the_spread(client, synthetic_store):
    eps = all_episodes(synthetic_store.store, RUN)
    task = "task-000004"
    group = [e for e in eps if e.task_id == task]
    page = client.get(f"/runs/{RUN}/groups/{task}").text
    samples = re.findall(r'<div class="sample" data-id="(\d+)" data-sample="(\d+)"', page)
    assert [int(s) for _, s in samples] == sorted(e.sample_index for e in group)
    listing = client.get(f"/runs/{RUN}/groups?variance=none").text
    flat = re.findall(r'<tr data-task="([^"]+)">', listing)
    for t in flat:
        scored = {e.reward for e in eps if e.task_id == t and e.status not in
                  ("task_error", "infra_error")}
        assert len(scored) <= 1, t


def test_token_page_shows_exactly_the_stored_ids(synthetic_store):
    """An episode tokenized with the real tokenizer: each span's data-id is the stored id
    and its text (raw-byte marks read back as bytes) is that id's exact bytes."""
    store = synthetic_store.store
    run = "run-tokens-pages"
    store.create_run(run, {"env": "echo", "policy": {"type": "vllm", "tokenizer": str(MODEL_DIR)}})
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "go"},
                {"role": "assistant", "content": "ok ✓", "reasoning_content": "think ü"}]
    store.save_episode(tokenized_record(run, messages, "echo-tokens"))
    ep = next(store.episodes(run))
    client = TestClient(create_app(ViewerConfig(store=synthetic_store.url)))
    page = client.get(f"/runs/{run}/episodes/{ep.id}/tokens").text
    spans = re.findall(r'<span class="m(\d)( sp)?" data-id="(\d+)">(.*?)</span>', page, re.DOTALL)
    assert [int(s[2]) for s in spans] == ep.token_ids
    assert [int(s[0]) for s in spans] == ep.loss_mask
    decoder = load_decoder(str(MODEL_DIR))
    shown = b""
    for *_, tid, inner in spans:
        data = shown_bytes(inner)
        assert data == decoder.token_bytes(int(tid))[0], tid
        shown += data
    assert shown.decode() == decoder.tok.decode(ep.token_ids, skip_special_tokens=False)
    assert "\\x" in page, "the multi-byte text was split across tokens"
    data = json.loads(html.unescape(re.search(
        r'<script type="application/json" id="token-data">(.*?)</script>', page, re.DOTALL).group(1)))
    assert len(data["lp"]) == len(ep.token_ids) and data["adv"] is not None


def test_the_store_is_never_written(synthetic_store, tmp_path):
    digest = hashlib.sha256(synthetic_store.path.read_bytes()).hexdigest()
    engine = readonly_engine(synthetic_store.url)
    with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM episodes"))
    client = TestClient(create_app(ViewerConfig(store=synthetic_store.url)))
    for path in ("/", f"/runs/{RUN}", f"/runs/{RUN}/episodes?q=cache", f"/runs/{RUN}/groups"):
        assert client.get(path).status_code == 200
    assert hashlib.sha256(synthetic_store.path.read_bytes()).hexdigest() == digest
    with pytest.raises(StoreNotFoundError, match="--store"):
        readonly_engine(f"sqlite:///{tmp_path / 'missing.db'}")


def test_export_download_streams_the_runs_export(client, synthetic_store, tmp_path):
    from orchestrator.export import ExportFilter, export

    got = client.get(f"/runs/{RUN}/export/jsonl")
    assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
    report = export(synthetic_store.store, RUN, "jsonl", tmp_path / "cli.jsonl", ExportFilter())
    assert got.content.count(b"\n") == report.rows > 0
    assert client.get(f"/runs/{RUN}/export/nope").status_code == 404


def test_artifacts_are_served_only_from_the_safe_root(synthetic_store, tmp_path):
    from tests.viewer.conftest import make_media, webdev_record

    inside, outside = tmp_path / "art", tmp_path / "elsewhere"
    video, shot = make_media(inside / "ep")
    store = synthetic_store.store
    store.create_run("run-art", {"env": "webdev"})
    store.save_episode(webdev_record("run-art", video, shot))
    other = webdev_record("run-art", *make_media(outside))
    other.task_id = "other"
    store.save_episode(other)
    ids = {e.task_id: e.id for e in store.episodes("run-art")}
    client = TestClient(create_app(ViewerConfig(store=synthetic_store.url,
                                                artifacts_roots=[inside])))
    page = client.get(f"/runs/run-art/episodes/{ids['todo-list']}").text
    assert "<video controls" in page and "<img" in page
    served = client.get(f"/runs/run-art/episodes/{ids['todo-list']}/artifacts/0")
    assert served.status_code == 200 and served.content == video.read_bytes()
    assert client.get(f"/runs/run-art/episodes/{ids['other']}/artifacts/0").status_code == 403
    assert client.get(f"/runs/run-art/episodes/{ids['todo-list']}/artifacts/9").status_code == 404


def test_stored_text_is_shown_never_run(synthetic_store):
    """Markup in messages, task ids and verifier output is escaped, and the episode's
    neighbours and JSON are reachable."""
    from orchestrator.records import EpisodeRecord

    store = synthetic_store.store
    store.create_run("run-xss", {"env": "echo"})
    evil = '<script>window.pwned=1</script><img src=x onerror="alert(1)">'
    for i in range(3):
        store.save_episode(EpisodeRecord(
            run_id="run-xss", task_id=f'echo-"x{i}"', sample_index=0, env_id="envfarm/echo-v0",
            status="tampered", reward=0.0, messages=[{"role": "user", "content": evil}],
            reward_details={"patch": f"+{evil}", "cause": evil}, error=evil))
    ids = [e.id for e in store.episodes("run-xss")]
    client = TestClient(create_app(ViewerConfig(store=synthetic_store.url)))
    for path in (f"/runs/run-xss/episodes/{ids[1]}", "/runs/run-xss/episodes?q=script",
                 "/runs/run-xss/groups/echo-%22x1%22", "/runs/run-xss"):
        page = client.get(path).text
        assert "<script>window" not in page and "<img src=x" not in page, path
    page = client.get(f"/runs/run-xss/episodes/{ids[1]}").text
    assert link(page, "prev-episode").endswith(f"/{ids[0]}")
    assert link(page, "next-episode").endswith(f"/{ids[2]}")
    data = client.get(f"/runs/run-xss/episodes/{ids[1]}.json").json()
    assert data["messages"][0]["content"] == evil and "token_ids" not in data


def test_a_store_of_the_first_schema_is_shown_as_it_is(tmp_path):
    """The viewer never migrates: a store left at the first migration still shows."""
    import random
    from datetime import UTC, datetime

    from alembic import command
    from alembic.config import Config

    from orchestrator import store as store_module
    from orchestrator.viewer import synthetic

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_store")
        now = datetime.now(UTC)
        conn.execute(store_module.runs.insert().values(
            id="old", config={"env": "echo"}, envfarm_version="0.0.1", state="done",
            created_at=now, updated_at=now))
        rec = synthetic.make_record(random.Random(3), "old", "task-000001", 0, "envfarm/swe-v0")
        conn.execute(store_module.episodes.insert(), [synthetic.episode_row(rec, now)])
    client = TestClient(create_app(ViewerConfig(store=f"sqlite:///{tmp_path / 'old.db'}")))
    for path in ("/", "/runs/old", "/runs/old/episodes", "/runs/old/episodes/1",
                 "/runs/old/episodes/1/tokens", "/runs/old/groups/task-000001"):
        assert client.get(path).status_code == 200, path
