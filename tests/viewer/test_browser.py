"""The viewer in a real browser (Debian's Chromium through Playwright) over a store made
by real echo rollouts: follow the links, apply the filters, read the tokens, play the
video, and check what the pages show against the store.

Screenshots are taken on every run; with ENVFARM_SCREENSHOTS=1 they are written to
docs/screenshots/ (the README's), else to a temporary folder.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import MODEL_DIR, ROOT

pytestmark = [pytest.mark.browser, pytest.mark.docker]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--autoplay-policy=no-user-gesture-required"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, viewer_url):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=viewer_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    if os.environ.get("ENVFARM_SCREENSHOTS"):
        folder = ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


def episodes_of(stores, run_id):
    return list(stores.store.episodes(run_id, statuses=None, with_calls=False))


def shown_ids(page) -> list[int]:
    return [int(v) for v in page.locator("#episodes tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.id)")]


def test_links_lead_from_the_runs_to_an_episode(page, rollout_store, shots):
    stores = rollout_store
    page.goto("/")
    for run in (stores.oracle_run, stores.noop_run):
        assert page.locator(f'#runs tr[data-run="{run}"]').count() == 1
    page.screenshot(path=shots / "runs.png")
    page.click(f'a[href="/runs/{stores.oracle_run}"]')
    counts = stores.store.status_counts(stores.oracle_run)
    assert page.locator('td[data-status="ok"]').inner_text() == str(counts["ok"]) == "6"
    assert page.locator("svg.plot").count() == 2
    page.click("text=Episodes (6)")
    ids = shown_ids(page)
    stored = episodes_of(stores, stores.oracle_run)
    assert ids == sorted(e.id for e in stored)
    page.click(f'#episodes a[href$="/episodes/{ids[0]}"]')
    episode = next(e for e in stored if e.id == ids[0])
    assert page.locator("#reward").inner_text() == "1"
    assert page.locator("#conversation article.turn").count() == len(episode.messages)
    call = next(m for m in episode.messages if m.get("tool_calls"))["tool_calls"][0]
    command = call["function"]["arguments"]
    assert json.loads(command)["command"] in page.locator("#conversation").inner_text()
    assert page.locator("#timings").inner_text().count("s") >= 3
    page.screenshot(path=shots / "episode.png", full_page=True)
    page.keyboard.press("]")
    page.wait_for_url(f"**/episodes/{ids[1]}")
    page.keyboard.press("[")
    page.wait_for_url(f"**/episodes/{ids[0]}")
    page.click("#group-link")
    assert page.locator("#group .sample").count() == 2
    rewards = page.locator("#group .sample").evaluate_all("s => s.map(x => x.dataset.reward)")
    assert rewards == ["1.0", "1.0"]


def test_filters_and_search_select_what_the_store_holds(page, rollout_store, shots):
    stores = rollout_store
    run = stores.synthetic_run
    eps = episodes_of(stores, run)
    page.goto(f"/runs/{run}")
    page.screenshot(path=shots / "run.png", full_page=True)
    from catalogue import Catalogue

    source = {t.id: t.source for t in Catalogue(stores.url).query()}
    html_text = page.content()
    for name in set(source.values()):
        n = sum(1 for e in eps if source[e.task_id] == name)
        assert re.search(rf"<td>{re.escape(name)}</td><td class=\"num\">{n}</td>", html_text), name
    page.goto(f"/runs/{run}/episodes")
    page.check('input[name="status"][value="ok"]')
    page.fill('input[name="env"]', "envfarm/webdev-v0")
    page.fill('input[name="min_reward"]', "0.2")
    page.fill('input[name="max_reward"]', "0.8")
    page.click("button[type=submit]")
    expected = sorted(e.id for e in eps if e.status == "ok" and e.env_id == "envfarm/webdev-v0"
                      and 0.2 <= e.reward <= 0.8)
    assert expected and shown_ids(page) == expected[:50]
    assert page.locator("#match-count").inner_text() == str(len(expected))
    page.screenshot(path=shots / "episodes.png")
    page.goto(f"/runs/{run}/episodes")
    page.fill('input[name="q"]', "deadlock")
    page.fill('input[name="sample"]', "2")
    page.click("button[type=submit]")
    found = [e.id for e in eps if e.sample_index == 2 and "deadlock" in json.dumps(e.messages)]
    got = shown_ids(page)
    while page.locator("#next").count():
        page.click("#next")
        got += shown_ids(page)
    assert found and got == found
    noop = stores.noop_run
    page.goto(f"/runs/{noop}/episodes?status=ok&min_reward=0.5")
    assert "no episodes match" in page.locator("#episodes").inner_text()


def test_tokens_page_shows_the_stored_ids_and_their_values(page, rollout_store, shots):
    from orchestrator.viewer.tokens import load_decoder

    stores = rollout_store
    ep = next(stores.store.episodes(stores.token_run))
    page.goto(f"/runs/{stores.token_run}/episodes/{ep.id}")
    page.click("#tokens-link")
    spans = page.locator("#tokens > span").evaluate_all("""ts => ts.map(t => ({
        id: Number(t.dataset.id), mask: t.classList.contains('m1') ? 1 : 0,
        parts: [...t.childNodes].map(n => n.nodeType === 3 ? [n.textContent, false]
                                                           : [n.textContent, true])}))""")
    assert [s["id"] for s in spans] == ep.token_ids
    assert [s["mask"] for s in spans] == ep.loss_mask
    decoder = load_decoder(str(MODEL_DIR))
    shown = b""
    for s in spans:
        data = b"".join(bytes.fromhex(text.removeprefix('\\x')) if raw else text.encode()
                        for text, raw in s["parts"])
        assert data == decoder.token_bytes(s["id"])[0]
        shown += data
    assert shown.decode() == decoder.tok.decode(ep.token_ids, skip_special_tokens=False)
    model_token = page.locator("#tokens > span.m1").first
    model_token.hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    k = ep.loss_mask.index(1)
    assert f"logprob {ep.token_logprobs[k]:.4f}" in tip.inner_text()
    assert "advantage" in tip.inner_text()
    page.check("#heat")
    assert model_token.evaluate("t => t.style.background") != ""
    page.screenshot(path=shots / "tokens.png")
    page.uncheck("#heat")
    assert model_token.evaluate("t => t.style.background") == ""


def test_webdev_recording_plays_inline(page, rollout_store, shots):
    stores = rollout_store
    ep = next(stores.store.episodes(stores.webdev_run))
    details = ep.reward_details
    assert ep.reward == 1.0 and details["artifacts"]["video"], "the oracle page was recorded"
    page.goto(f"/runs/{stores.webdev_run}/episodes/{ep.id}")
    assert page.locator("#checks tr.pass").count() == details["checks_passed"] == \
        details["checks_total"]
    names = page.locator("#checks").inner_text()
    assert all(c["name"] in names for c in details["checks"])
    video = page.locator("#media video")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => { const v = document.querySelector('#media video'); return v.currentTime > 0.3; }",
        timeout=15_000)
    assert video.evaluate("v => v.videoWidth") > 0
    video.evaluate("v => { v.pause(); v.currentTime = v.duration * 0.8; }")  # a frame, not the blank start
    images = page.locator("#media img")
    assert images.count() == 1 + len(details["artifacts"]["frames"])
    images.first.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#media img')][0].complete")
    assert images.first.evaluate("i => i.naturalWidth") > 0
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "webdev.png", full_page=True)


def test_groups_show_the_spread_of_each_task(page, rollout_store, shots):
    stores = rollout_store
    run = stores.synthetic_run
    eps = episodes_of(stores, run)
    page.goto(f"/runs/{run}/groups")
    page.click("#no-variance")
    tasks = page.locator("#groups tbody tr").evaluate_all("r => r.map(x => x.dataset.task)")
    scored = {}
    for e in eps:
        if e.status not in ("task_error", "infra_error"):
            scored.setdefault(e.task_id, set()).add(e.reward)
    assert tasks == sorted(t for t, r in scored.items() if len(r) == 1)[:50]
    varied = next(t for t, r in sorted(scored.items()) if len(r) > 1)
    page.goto(f"/runs/{run}/groups/{varied}")
    rewards = page.locator("#group .sample").evaluate_all("s => s.map(x => x.dataset.reward)")
    stored = [e.reward for e in sorted(eps, key=lambda e: e.sample_index) if e.task_id == varied]
    assert [float(r) if r else None for r in rewards] == stored
    page.screenshot(path=shots / "group.png")
    assert re.search(r"\d+ samples", page.locator("h1").inner_text())
