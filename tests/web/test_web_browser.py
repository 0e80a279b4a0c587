"""The web page in a real browser (headless Chromium driven by Playwright) over a real ``serve --http``
process and the local model server: the whole story a product person follows, and the attacks on it.

Screenshots of every step go to tests/artifacts/web/ (git-ignored); docs/screenshots/ holds copies of
the key ones for README. Chromium is Debian's (``/usr/bin/chromium``; ``python3 run.py test`` installs it
with apt-get where it can); without it these tests are skipped, loudly.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from factories import add_token
from modelserver import ModelServer, allow_endpoint

CHROMIUM = os.environ.get("AGNT_TRACES_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "web"
XSS = '<script>window.__xss = 1; alert(\'xss\')</script>"><img src=x onerror="window.__xss = 2; alert(2)">'

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and shutil.which(CHROMIUM)),
    reason=f"SKIPPED LOUDLY: no Chromium at {CHROMIUM} — the browser tests of the web page did not run "
    "(apt-get install -y chromium; python3 run.py test does it where apt-get works)",
)


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    model: ModelServer
    proc: subprocess.Popen[str]
    log: Path
    shots: list[Path] = field(default_factory=list)

    def api(self, tenant: str, method: str, path: str, **kw: Any) -> httpx2.Response:
        with httpx2.Client(timeout=30) as c:
            return c.request(
                method,
                f"{self.url}/api/v1/tenants/{tenant}{path}",
                headers={"Authorization": f"Bearer {self.tokens[tenant]}", **kw.pop("headers", {})},
                **kw,
            )


async def _make_tokens(db: str, tenants: list[str]) -> dict[str, str]:
    out = {}
    async with open_app(Settings(db_path=db)) as app:
        for tenant in tenants:
            out[tenant], _ = await add_token(app, tenant, "web-test")
    return out


@pytest.fixture
def server(tmp_path: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    allow_endpoint(monkeypatch, model_server.openai_base)  # openai needs the /v1 base listed as well
    db = str(tmp_path / "web.db")
    tokens = asyncio.run(_make_tokens(db, ["acme", "other"]))
    log = tmp_path / "server.log"
    env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "info"}
    cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", db]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out, env=env, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (match := re.search(r"serving on (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield Server(match.group(1), tokens, model_server, proc, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _seed(srv: Server) -> dict[str, Any]:
    """A published prompt whose production model fails (so its traces fail), a few good traces, and
    another tenant's trace, session and prompt."""
    content = {
        "blocks": [
            {"id": "rules", "role": "system", "content": "You answer for {{ company }}. Be brief."},
            {"id": "ask", "role": "user", "content": "Customer asks: {{ question }}"},
        ],
        "variables": [
            {"name": "company", "type": "string", "required": True},
            {"name": "question", "type": "string", "required": True},
        ],
        "model": {"provider": "openai", "name": "mock-fail-500", "params": {"api_base": srv.model.openai_base}},
    }
    assert srv.api("acme", "PUT", "/prompts/support", json={"content": content}).status_code == 200
    assert srv.api("acme", "POST", "/prompts/support/publish").status_code == 200
    bad = srv.api(
        "acme",
        "POST",
        "/prompts/support/run",
        json={"variables": {"company": "Acme", "question": "my parcel never arrived"}},
    )
    assert bad.status_code == 502, bad.text  # the model failed; the failure is recorded as a trace
    for i in range(3):
        ok = {
            "promptName": "other-flow",
            "messages": [{"role": "user", "content": f"hello {i}"}],
            "output": f"hi {i}",
            "model": {"provider": "openai", "name": "gpt-4o-mini"},
            "inputTokens": 5,
            "outputTokens": 2,
            "cost": 0.0001,
            "duration": 0.3,
            "status": "success",
        }
        assert srv.api("acme", "POST", "/traces", json=ok).status_code in (200, 201)
    xss = {
        "messages": [{"role": "user", "content": XSS}],
        "output": XSS,
        "model": {"provider": "openai", "name": "gpt-4o-mini"},
        "variables": {"name": XSS},
        "tags": ["xss-probe"],
        "status": "success",
    }
    xss_id = srv.api("acme", "POST", "/traces", json=xss).json()["id"]
    other = srv.api("other", "POST", "/traces", json={**xss, "output": "other tenant's secret"}).json()["id"]
    other_session = srv.api("other", "POST", f"/traces/{other}/playground/sessions").json()["id"]
    assert srv.api("other", "PUT", "/prompts/private", json={"content": content}).status_code == 200
    return {"xss": xss_id, "other_trace": other, "other_session": other_session}


def _sign_in(page: Any, srv: Server) -> None:
    page.goto(srv.url + "/")
    assert page.url.endswith("/signin")
    _shot(page, "01-sign-in")
    page.get_by_label("Token").fill(srv.tokens["acme"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(srv.url + "/")


def test_the_whole_story_in_a_browser(server: Server, browser: Any) -> None:
    srv = server
    _seed(srv)
    dialogs: list[str] = []
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.set_default_timeout(20_000)

    # Sign in; the cookie is HttpOnly and SameSite=Strict, and the token is in no URL.
    _sign_in(page, srv)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "agnt_web"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert srv.tokens["acme"] not in cookie["value"]
    _shot(page, "02-traces")

    # Find the failing trace by search.
    page.get_by_label("Search").fill("parcel")
    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r"query=parcel"))
    rows = page.locator("table.rows tbody tr.is-error")
    assert rows.count() == 1
    _shot(page, "03-search-failing")
    rows.first.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/traces/"))
    assert page.get_by_role("alert").first.is_visible()  # the error stands out
    assert page.get_by_text("my parcel never arrived").first.is_visible()
    _shot(page, "04-failing-trace")

    # Open it in the playground and edit a block.
    page.get_by_role("button", name="Open in playground").click()
    page.wait_for_url(re.compile(r"/playground/"))
    playground_url = page.url.split("#")[0]
    page.get_by_label("Content of block ask").fill("A customer of {{ company }} asks:\n{{ question }}\nAnswer kindly.")
    page.locator("li.block", has=page.get_by_label("Content of block ask")).get_by_role(
        "button", name="Save block"
    ).click()
    page.wait_for_url(re.compile(r"#blocks"))
    assert page.get_by_text("Block 'ask' updated.").is_visible()

    # Two models (OpenAI and Anthropic wire formats on the local model server) instead of the failing one.
    page.get_by_label(re.compile(r"mock-fail-500")).uncheck()
    page.get_by_label("Provider").select_option("openai")
    page.get_by_label("Model name").fill("gpt-4o-mini")
    page.get_by_label("Endpoint").select_option(srv.model.openai_base)
    page.get_by_role("button", name="Use these models").click()
    page.wait_for_url(re.compile(r"#models"))
    page.get_by_label("Provider").select_option("anthropic")
    page.get_by_label("Model name").fill("claude-sonnet-4-5")
    page.get_by_label("Endpoint").select_option(srv.model.base_url)
    page.get_by_role("button", name="Use these models").click()
    page.wait_for_url(re.compile(r"#models"))
    assert page.get_by_text("Models: openai/gpt-4o-mini, anthropic/claude-sonnet-4-5.").is_visible()
    assert page.get_by_text("A customer of Acme asks:").first.is_visible()  # the compiled messages
    _shot(page, "05-playground-edited")

    page.get_by_role("button", name="Run on 2 models").click()
    page.wait_for_url(re.compile(r"#outputs"))
    outputs = page.locator(".outputs article")
    assert outputs.count() == 3  # the original and one per model, side by side
    assert (
        page.locator(".out", has_text="openai/gpt-4o-mini").get_by_text("echo: A customer of Acme asks:").is_visible()
    )
    assert (
        page.locator(".out", has_text="anthropic/claude-sonnet-4-5")
        .get_by_text("echo: A customer of Acme asks:")
        .is_visible()
    )
    assert page.locator(".deltas").count() == 2
    # The diff is rows, not raw unified-diff text.
    assert page.locator("#diff table.diff-table tr.changed").count() >= 1
    assert "@@" not in page.locator("#diff").inner_text()
    _shot(page, "06-playground-run-diff")
    page.locator("#outputs").screenshot(path=str(ARTIFACTS / "06b-outputs-side-by-side.png"))

    # Save to the draft, then publish from the prompt page (draft vs production shown first).
    page.get_by_role("button", name="Save to draft").click()
    page.wait_for_url(srv.url + "/prompts/support")
    assert page.get_by_text(re.compile(r"Saved to the draft of support")).is_visible()
    assert page.locator("table.diff-table tr.changed, table.diff-table tr.added").count() >= 1
    _shot(page, "07-prompt-draft-vs-production")
    page.get_by_label("Note (why this change)").fill("kinder answer, working model")
    page.get_by_role("button", name="Publish the draft to production").click()
    page.wait_for_url(srv.url + "/prompts/support")
    assert page.get_by_text("support: production published as version 2.").is_visible()
    _shot(page, "08-published")

    # The app calls the prompt again: the new trace is on version 2 and succeeds.
    good = srv.api(
        "acme", "POST", "/prompts/support/run", json={"variables": {"company": "Acme", "question": "where is it?"}}
    )
    assert good.status_code == 200, good.text
    page.goto(srv.url + "/?prompt_name=support&prompt_version=2")
    row = page.locator("table.rows tbody tr").first
    assert "v2" in row.inner_text() and "ok" in row.inner_text()
    assert page.locator("table.rows tbody tr.is-error").count() == 0
    _shot(page, "09-new-trace-on-v2")

    # Stats draw charts.
    page.goto(srv.url + "/stats")
    assert page.locator("svg.chart").count() == 5
    _shot(page, "10-stats")

    # A save conflict: another edit moved the draft while this playground was open.
    page.goto(playground_url)
    page.get_by_label("Content of block rules").fill("You answer for {{ company }}. Be very brief.")
    page.locator("li.block", has=page.get_by_label("Content of block rules")).get_by_role(
        "button", name="Save block"
    ).click()
    page.wait_for_url(re.compile(r"#blocks"))
    current = srv.api("acme", "GET", "/prompts/support").json()
    changed = {
        **current["content"],
        "blocks": [*current["content"]["blocks"], {"id": "sign", "role": "user", "content": "Sign as Bo."}],
    }
    assert srv.api("acme", "PUT", "/prompts/support", json={"content": changed}).status_code == 200
    page.get_by_role("button", name="Save to draft").click()
    conflict = page.locator("section.conflict")
    assert conflict.is_visible()
    assert conflict.get_by_text("How to resolve:").is_visible()
    assert conflict.locator("table.diff-table").count() >= 1  # what changed, as rows
    _shot(page, "11-save-conflict")
    conflict.screenshot(path=str(ARTIFACTS / "11b-conflict-panel.png"))
    kept = srv.api("acme", "GET", "/prompts/support").json()["content"]["blocks"]  # nothing was overwritten
    assert [b["id"] for b in kept] == ["rules", "ask", "sign"] and kept[0]["content"].endswith("Be brief.")
    assert dialogs == []


def test_xss_payload_renders_as_text(server: Server, browser: Any) -> None:
    ids = _seed(server)
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _sign_in(page, server)
    for url in (f"/traces/{ids['xss']}", "/?query=xss", "/?tags=xss-probe"):
        page.goto(server.url + url)
        page.wait_for_load_state("load")
        assert page.evaluate("() => window.__xss") is None
    page.goto(server.url + f"/traces/{ids['xss']}")
    assert page.get_by_text("<script>window.__xss = 1;", exact=False).first.is_visible()
    assert page.locator("img[src=x]").count() == 0
    _shot(page, "12-xss-inert")
    page.get_by_role("button", name="Open in playground").click()
    page.wait_for_url(re.compile(r"/playground/"))
    page.wait_for_load_state("load")
    assert page.evaluate("() => window.__xss") is None
    assert dialogs == []


def test_other_tenants_ids_answer_404_and_posts_need_the_csrf_token(server: Server, browser: Any) -> None:
    ids = _seed(server)
    page = browser.new_page()
    _sign_in(page, server)
    for path in (f"/traces/{ids['other_trace']}", f"/playground/{ids['other_session']}", "/prompts/private"):
        response = page.goto(server.url + path)
        assert response.status == 404, path
        assert page.get_by_role("heading", name="Not found").is_visible()
        assert "other tenant's secret" not in page.content()
    _shot(page, "13-other-tenant-404")
    # Posting to another tenant's trace opens nothing either.
    page.goto(server.url + "/")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    opened = page.request.post(server.url + f"/traces/{ids['other_trace']}/playground", form={"csrf": csrf})
    assert opened.status == 404

    before = server.api("acme", "GET", "/prompts/support").json()
    for form in ({"expected_etag": "*"}, {"expected_etag": "*", "csrf": "forged"}):
        refused = page.request.post(server.url + "/prompts/support/publish", form=form, max_redirects=0)
        assert refused.status == 403, form
    after = server.api("acme", "GET", "/prompts/support").json()
    assert after["versions"] == before["versions"]  # nothing was published

    # The page's headers: strict CSP and friends.
    response = page.goto(server.url + "/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"

    # Signing out ends the session: the old cookie opens nothing.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/signin"))
    page.goto(server.url + "/prompts")
    assert page.url.endswith("/signin")
    # No token in any log line.
    server.proc.send_signal(signal.SIGINT)
    server.proc.wait(15)
    log = server.log.read_text()
    assert "Started server process" in log  # the server logged at INFO level
    for token in server.tokens.values():
        assert token not in log
