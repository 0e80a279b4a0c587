"""``agnt-traces ui``: the web page for one person on loopback, no token — and only for its own address.
Also the page's refusals that need no browser: sign-in with a bad token, forms without the CSRF token."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from agnt_traces.config import Settings
from agnt_traces.web.local import build_ui_app
from factories import trace_payload
from http_helpers import in_process

pytestmark = pytest.mark.anyio


async def test_ui_needs_no_token_but_answers_only_its_own_address(settings: Settings) -> None:
    asgi = build_ui_app(settings, 8788)
    async with asgi.router.lifespan_context(asgi):
        transport = httpx2.ASGITransport(asgi)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8788") as c:
            page = await c.get("/")
            assert page.status_code == 200 and "tenant <strong>default</strong>" in page.text
            assert "Sign out" not in page.text
            assert (await c.get("/signin")).headers["location"] == "/"
        async with httpx2.AsyncClient(transport=transport, base_url="http://evil.example:8788") as c:
            assert (await c.get("/")).status_code == 403  # a rebound name reaches nothing


async def test_signin_refuses_bad_tokens_and_forms_need_the_csrf_token(settings: Settings) -> None:
    async with in_process(settings, "acme") as env:
        c = env.client
        await env.app.traces.ingest("acme", trace_payload())
        form = await c.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        bad = await c.post("/signin", data={"csrf": csrf, "token": "agt_not_a_token"})
        assert bad.status_code == 401 and "not valid" in bad.text
        assert "agt_not_a_token" not in bad.text
        no_csrf = await c.post("/signin", data={"token": env.tokens["acme"]})
        assert no_csrf.status_code == 403
        ok = await c.post("/signin", data={"csrf": csrf, "token": env.tokens["acme"]})
        assert ok.status_code == 303 and "httponly" in ok.headers["set-cookie"].lower()
        assert env.tokens["acme"] not in ok.headers["set-cookie"]
        assert "samesite=strict" in ok.headers["set-cookie"].lower()
        # The pre-sign-in CSRF token is not the signed-in session's: a new id and a new token.
        page = await c.get("/")
        assert page.status_code == 200 and csrf not in page.text
        assert (await c.post("/prompts/x/publish", data={"csrf": csrf})).status_code == 403
        # REST and MCP keep their own answers: JSON errors, not the page.
        api = await c.get("/api/v1/tenants/acme/traces")
        assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"


def test_ui_command_serves_on_loopback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "agnt_traces", "ui", "--port", "0", "--db", str(tmp_path / "t.db")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        deadline = time.monotonic() + 10
        with httpx2.Client() as c:
            while True:
                try:
                    page = c.get(match.group(1))
                    break
                except httpx2.ConnectError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        assert page.status_code == 200 and "Traces" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        if proc.stderr:
            proc.stderr.close()
