"""The in-browser check runner. Runs INSIDE the verifier sandbox, never on the host.

Usage: `python3 runner.py SPEC_JSON OUT_DIR`. Standalone on purpose (stdlib +
playwright only): it is copied into a fresh container from the browser image, which
has no envfarm package. It serves the workspace on loopback, opens it in Debian's
Chromium through Playwright, runs the built-in checks and the task's check steps in
one recorded session, and writes `OUT_DIR/result.json` plus the artifacts (final
screenshot, one frame per check, `video.webm`).

Every request that leaves the loopback server is aborted and recorded: the page is
untrusted code and the sandbox has no network anyway; the abort makes the failure
fast and visible. What the page does (throws, hangs, fails a step) is a failed check
in the result; only a runner that cannot start the browser exits non-zero.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--no-zygote", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--mute-audio"]
# Kept equal to envs/webdev/verify.py's tables (this file cannot import envfarm).
BUILTIN_WEIGHTS = {"loads": 1.0, "no_uncaught_errors": 1.0, "no_console_errors": 1.0,
                   "fits_viewport": 1.0}
BUILTIN_GROUPS = {"loads": "executability", "no_uncaught_errors": "executability",
                  "no_console_errors": "executability", "fits_viewport": "layout"}


def _line(exc: BaseException, limit: int) -> str:
    """The first line of an error message, cut to `limit` characters."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


class StepFailed(Exception):
    """A check step did not hold; the message says which and why."""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(directory: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class Session:
    """One browser page plus everything observed on it (errors, blocked requests, frames)."""

    def __init__(self, page: Any, spec: dict, out: Path, origin: str) -> None:
        self.page, self.spec, self.out, self.origin = page, spec, out, origin
        self.page_errors: list[dict] = []
        self.console_errors: list[dict] = []
        self.blocked: list[str] = []
        self.frames: list[str] = []
        self.memory: dict[str, str] = {}
        self.t0 = time.monotonic()
        page.on("pageerror", lambda e: _keep(self.page_errors,
                                             {"t_ms": self.now_ms(), "message": str(e)[:500]}))
        page.on("console", self._on_console)

    def now_ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000)

    def route(self, route: Any) -> None:
        url = route.request.url
        scheme = urlsplit(url).scheme
        if url.startswith(self.origin) or scheme in ("data", "blob", "about"):
            route.continue_()
        else:
            _keep(self.blocked, url[:300])
            route.abort("internetdisconnected")

    def _on_console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = msg.text
        location = (msg.location or {}).get("url", "")
        off_host = location and not location.startswith(self.origin)
        if text.startswith("Failed to load resource") and (off_host or self.blocked):
            return  # an aborted off-host request: recorded in `blocked`, not the page's bug
        _keep(self.console_errors, {"t_ms": self.now_ms(), "message": text[:500]})

    def frame(self, label: str) -> None:
        name = f"frames/{len(self.frames):03d}-{re.sub(r'[^a-z0-9]+', '-', label.lower())[:40]}.png"
        try:
            self.page.screenshot(path=str(self.out / name), timeout=15_000)
            self.frames.append(name)
        except PlaywrightError:  # a crashed or hung page: no frame, the checks say why
            return


# -- steps --------------------------------------------------------------------------

MAX_RECORDED = 200
"""Errors and blocked requests kept per run: the page decides how many it makes, and all
of them go into result.json, the host's memory and the stored reward details."""


def _keep(items: list, item: Any) -> None:
    if len(items) < MAX_RECORDED:
        items.append(item)


def _poll(fn: Any, timeout_ms: int, what: str) -> None:
    """Retry an expectation until it holds or the timeout passes (as Playwright's expect)."""
    deadline = time.monotonic() + timeout_ms / 1000
    last = ""
    while True:
        try:
            ok, last = fn()
        except (PlaywrightError, StepFailed, KeyError) as exc:
            ok, last = False, f"{type(exc).__name__}: {_line(exc, 200)}"
        if ok:
            return
        if time.monotonic() >= deadline:
            raise StepFailed(f"{what}: {last}")
        time.sleep(0.05)


def _text(page: Any, sel: str) -> str:
    loc = page.locator(sel)
    if loc.count() == 0:
        raise StepFailed(f"no element matches {sel!r}")
    return loc.first.inner_text().strip()


def _compare(actual: str, step: dict) -> tuple[bool, str]:
    if "equals" in step:
        return actual == str(step["equals"]), f"got {actual!r}, want {step['equals']!r}"
    if "contains" in step:
        return str(step["contains"]) in actual, f"got {actual!r}, want it to contain {step['contains']!r}"
    if "not_contains" in step:
        return str(step["not_contains"]) not in actual, f"got {actual!r}, must not contain {step['not_contains']!r}"
    if "matches" in step:
        return re.search(step["matches"], actual) is not None, f"got {actual!r}, want /{step['matches']}/"
    raise StepFailed("expectation without equals/contains/not_contains/matches")


def run_step(s: Session, step: dict, action_timeout_ms: int, expect_timeout_ms: int) -> None:
    page = s.page
    t = step.get("timeout_ms", action_timeout_ms)
    e = step.get("timeout_ms", expect_timeout_ms)
    if "click" in step:
        page.locator(step["click"]).first.click(timeout=t)
    elif "dblclick" in step:
        page.locator(step["dblclick"]).first.dblclick(timeout=t)
    elif "fill" in step:
        page.locator(step["fill"]).first.fill(str(step.get("value", "")), timeout=t)
    elif "type" in step:
        page.locator(step["type"]).first.press_sequentially(str(step.get("value", "")), timeout=t)
    elif "press" in step:
        page.locator(step["press"]).first.press(step["key"], timeout=t)
    elif "select" in step:
        page.locator(step["select"]).first.select_option(str(step["value"]), timeout=t)
    elif "check" in step:
        page.locator(step["check"]).first.check(timeout=t)
    elif "hover" in step:
        page.locator(step["hover"]).first.hover(timeout=t)
    elif "keyboard" in step:
        page.keyboard.press(step["keyboard"])
    elif "wait_ms" in step:
        page.wait_for_timeout(min(int(step["wait_ms"]), 5000))
    elif "reload" in step:
        page.reload(wait_until="load", timeout=20_000)
    elif "remember" in step:
        s.memory[step["name"]] = page.locator(step["remember"]).first.inner_html(timeout=t)
    elif "expect_changed" in step:
        name = step["expect_changed"]
        sel = step["of"]
        _poll(lambda: (page.locator(sel).first.inner_html(timeout=t) != s.memory[name],
                       f"{sel} did not change"), e, f"expect_changed {sel}")
    elif "expect_visible" in step:
        sel = step["expect_visible"]
        _poll(lambda: (page.locator(sel).first.is_visible(), f"{sel} is not visible"),
              e, f"expect_visible {sel}")
    elif "expect_hidden" in step:
        sel = step["expect_hidden"]
        _poll(lambda: (not page.locator(sel).first.is_visible(), f"{sel} is visible"),
              e, f"expect_hidden {sel}")
    elif "expect_count" in step:
        sel = step["expect_count"]

        def count() -> tuple[bool, str]:
            n = page.locator(sel).count()
            if "equals" in step:
                return n == step["equals"], f"{n} match, want {step['equals']}"
            return n >= step.get("min", 1), f"{n} match, want at least {step.get('min', 1)}"
        _poll(count, e, f"expect_count {sel}")
    elif "expect_text" in step:
        sel = step["expect_text"]
        _poll(lambda: _compare(_text(page, sel), step), e, f"expect_text {sel}")
    elif "expect_value" in step:
        sel = step["expect_value"]
        _poll(lambda: _compare(page.locator(sel).first.input_value(timeout=t).strip(), step),
              e, f"expect_value {sel}")
    elif "expect_attr" in step:
        sel, name = step["expect_attr"], step["name"]
        _poll(lambda: _compare(page.locator(sel).first.get_attribute(name, timeout=t) or "", step),
              e, f"expect_attr {sel}[{name}]")
    elif "expect_class" in step:
        sel = step["expect_class"]
        _poll(lambda: _compare(" " + (page.locator(sel).first.get_attribute("class", timeout=t)
                                      or "") + " ", {"contains": f" {step['contains']} "}
                               if "contains" in step else
                               {"not_contains": f" {step['not_contains']} "}),
              e, f"expect_class {sel}")
    elif "expect_js" in step:
        expr = step["expect_js"]
        _poll(lambda: (bool(page.evaluate(expr)), f"{expr} is falsy"), e, "expect_js")
    elif "expect_in_viewport" in step:
        sel = step["expect_in_viewport"]
        _poll(lambda: _in_viewport(page, sel, t), e, f"expect_in_viewport {sel}")
    else:
        raise StepFailed(f"unknown step {sorted(step)}")


def _in_viewport(page: Any, sel: str, timeout_ms: int = 5000) -> tuple[bool, str]:
    box = page.locator(sel).first.bounding_box(timeout=timeout_ms)
    size = page.viewport_size
    if box is None:
        return False, f"{sel} is not rendered"
    ok = box["x"] >= -1 and box["x"] + box["width"] <= size["width"] + 1 and box["width"] > 0
    return ok, f"{sel} spans x={box['x']:.0f}..{box['x'] + box['width']:.0f}, viewport {size['width']}"


# -- the session ---------------------------------------------------------------------

def builtin_load(s: Session, url: str, spec: dict) -> dict[str, Any]:
    """Open the page; `loads` holds when it answers 200, renders something and throws nothing.

    `fatal` marks a page that is not there at all (no answer, HTTP error, empty body):
    then nothing else can hold. A page that throws while loading is still checked."""
    try:
        response = s.page.goto(url, wait_until="load", timeout=spec.get("load_timeout_ms", 20_000))
    except PlaywrightError as exc:
        return {"passed": False, "fatal": True,
                "error": f"page did not load: {_line(exc, 300)}"}
    status = response.status if response else 0
    s.page.wait_for_timeout(spec.get("settle_ms", 300))
    if status != 200:
        return {"passed": False, "fatal": True,
                "error": f"{spec.get('entry', 'index.html')} answered HTTP {status}"}
    rendered = s.page.evaluate(
        "() => !!document.body && document.body.getBoundingClientRect().height > 0 &&"
        " document.body.querySelectorAll('*').length > 0")
    if not rendered:
        return {"passed": False, "fatal": True, "error": "the page body is empty"}
    if s.page_errors:
        return {"passed": False, "error": f"uncaught error while loading: {s.page_errors[0]['message']}"}
    return {"passed": True}


def builtin_layout(s: Session, spec: dict) -> dict[str, Any]:
    """No horizontal overflow at the task's viewport; listed elements inside it."""
    page = s.page
    width = page.evaluate("() => document.documentElement.scrollWidth")
    view = page.viewport_size["width"]
    if width > view + 1:
        return {"passed": False, "error": f"horizontal overflow: content is {width}px wide, viewport {view}px"}
    for sel in spec.get("layout_in_viewport", []):
        try:
            ok, why = _in_viewport(page, sel, spec.get("action_timeout_ms", 5000))
        except PlaywrightError as exc:
            ok, why = False, f"{sel}: {_line(exc, 200)}"
        if not ok:
            return {"passed": False, "error": why}
    return {"passed": True}


def run_checks(s: Session, url: str, spec: dict) -> list[dict]:
    results: list[dict] = []
    weights = {**BUILTIN_WEIGHTS, **spec.get("builtin_weights", {})}

    def record(name: str, group: str, weight: float, outcome: dict, started: float) -> None:
        results.append({"name": name, "group": group, "weight": float(weight),
                        "passed": bool(outcome["passed"]), "error": outcome.get("error"),
                        "duration_ms": int((time.monotonic() - started) * 1000)})

    started = time.monotonic()
    loaded = builtin_load(s, url, spec)
    record("loads", "executability", weights["loads"], loaded, started)
    s.frame("load")
    if loaded.get("fatal"):
        reason = {"passed": False, "error": "not run: the page did not load"}
        for name in ("no_uncaught_errors", "no_console_errors", "fits_viewport"):
            record(name, BUILTIN_GROUPS[name], weights[name], reason, time.monotonic())
        for check in spec.get("checks", []):
            record(check["name"], check.get("group", "function"), check.get("weight", 1.0),
                   reason, time.monotonic())
        return results
    started = time.monotonic()
    record("fits_viewport", "layout", weights["fits_viewport"], builtin_layout(s, spec), started)

    action_ms = spec.get("action_timeout_ms", 5000)
    expect_ms = spec.get("expect_timeout_ms", 3000)
    for check in spec.get("checks", []):
        started = time.monotonic()
        outcome: dict[str, Any] = {"passed": True}
        try:
            if check.get("reload"):
                s.page.goto(url, wait_until="load", timeout=20_000)
                s.page.wait_for_timeout(spec.get("settle_ms", 300))
            for i, step in enumerate(check.get("steps", [])):
                try:
                    run_step(s, step, action_ms, expect_ms)
                except StepFailed as exc:
                    raise StepFailed(f"step {i + 1}: {exc}") from None
                except (PlaywrightError, KeyError, ValueError, TypeError) as exc:
                    raise StepFailed(
                        f"step {i + 1} {json.dumps(step)[:120]}: {_line(exc, 200)}"
                    ) from None
        except StepFailed as exc:
            outcome = {"passed": False, "error": str(exc)}
        record(check["name"], check.get("group", "function"), check.get("weight", 1.0),
               outcome, started)
        s.frame(check["name"])

    s.page.wait_for_timeout(100)
    uncaught = {"passed": not s.page_errors}
    if s.page_errors:
        uncaught["error"] = f"{len(s.page_errors)} uncaught error(s): {s.page_errors[0]['message']}"
    record("no_uncaught_errors", "executability", weights["no_uncaught_errors"], uncaught,
           time.monotonic())
    errors = s.console_errors + s.page_errors
    console = {"passed": not errors}
    if errors:
        console["error"] = f"{len(errors)} console error(s): {errors[0]['message']}"
    record("no_console_errors", "executability", weights["no_console_errors"], console,
           time.monotonic())
    return results


def frames_to_video(out: Path, frames: list[str]) -> str | None:
    """Fallback recorder: the per-check frames as a 2 fps WebM, made by Debian's ffmpeg."""
    if not frames or not shutil.which("ffmpeg"):
        return None
    listing = out / "frames.txt"
    listing.write_text("".join(f"file '{out / f}'\nduration 0.5\n" for f in frames)
                       + f"file '{out / frames[-1]}'\n")
    proc = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libvpx", "-b:v", "1M",
         "-pix_fmt", "yuv420p", str(out / "video.webm")],
        capture_output=True, text=True, timeout=120, check=False)
    listing.unlink(missing_ok=True)
    return "video.webm" if proc.returncode == 0 else None


def main(spec_path: str, out_dir: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(out_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    workspace = spec.get("workspace", "/workspace")
    server, port = serve(workspace)
    origin = f"http://127.0.0.1:{port}/"
    url = origin + spec.get("entry", "index.html")
    viewport = spec.get("viewport", {"width": 1024, "height": 768})
    result: dict[str, Any] = {"url": url, "viewport": viewport}
    t0 = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        phases: dict[str, float] = {"browser_start": time.monotonic()}
        result["browser_start_ms"] = int((time.monotonic() - t0) * 1000)
        result["browser_version"] = browser.version
        video_error, mode = None, spec.get("video", "playwright")
        context = None
        if mode == "playwright":
            try:
                context = browser.new_context(
                    viewport=viewport, record_video_dir=str(out / "raw-video"),
                    record_video_size=viewport, service_workers="block")
            except PlaywrightError as exc:  # no usable ffmpeg for Playwright's recorder
                video_error = _line(exc, 300)
        if context is None:
            context = browser.new_context(viewport=viewport, service_workers="block")
        page = context.new_page()
        session = Session(page, spec, out, origin)
        context.route("**/*", session.route)
        try:
            result["checks"] = run_checks(session, url, spec)
        except PlaywrightError:  # the page killed the browser mid-check: score what was seen
            result["runner_error"] = traceback.format_exc(limit=3)[-1500:]
            result.setdefault("checks", [])
        final = "final.png"
        try:
            page.screenshot(path=str(out / final), timeout=15_000)
        except PlaywrightError:
            final = None
        raw_video = None
        try:
            raw_video = Path(page.video.path()) if page.video else None
        except PlaywrightError as exc:
            video_error = _line(exc, 300)
        phases["checks"] = time.monotonic()
        context.close()  # finishes the video file
        browser.close()
        phases["browser_close"] = time.monotonic()
    server.shutdown()
    video_name = None
    if raw_video is not None and raw_video.is_file() and raw_video.stat().st_size > 0:
        raw_video.rename(out / "video.webm")
        video_name, result["video_source"] = "video.webm", "playwright"
    shutil.rmtree(out / "raw-video", ignore_errors=True)
    if video_name is None and mode != "none":
        video_name = frames_to_video(out, session.frames)
        result["video_source"] = "frames" if video_name else None
    phases["video"] = time.monotonic()
    result.update({
        "final_screenshot": final, "frames": session.frames, "video": video_name,
        "video_error": video_error, "page_errors": session.page_errors,
        "console_errors": session.console_errors, "blocked_requests": session.blocked,
        "wall_ms": int((time.monotonic() - t0) * 1000),
        "phase_ms": {k: int((v - t0) * 1000) for k, v in phases.items()},
    })
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: runner.py SPEC_JSON OUT_DIR")
    os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", "/opt/pw-browsers")
    sys.exit(main(sys.argv[1], sys.argv[2]))
