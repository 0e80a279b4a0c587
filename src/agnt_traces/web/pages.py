"""The web page: server-rendered HTML over the same services as REST and MCP, for the signed-in tenant.

Pages: ``/`` (traces), ``/traces/{id}``, ``/playground/{session_id}``, ``/prompts``, ``/prompts/{name}``,
``/stats``, ``/signin``, ``/signout``. Every POST is a plain form carrying the session's CSRF token; it
changes something through a service and redirects (303) to the page that shows the result.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..app import App
from ..errors import AgntError, Conflict, InvalidArgument, NotFound
from ..ids import ms_to_rfc3339, now_ms
from ..logs import log_failure
from ..models import message_text
from ..services.playground_results import SessionDiff, SessionView
from ..services.queries import StatsQuery, TraceQuery, validate_query
from ..tokens import hash_token
from .charts import SERIES_CLASSES, line_chart
from .diffview import DiffFile, diff_files
from .sessions import COOKIE, WebSession, WebSessions

__all__ = ["Pages", "WebOptions"]

logger = logging.getLogger("agnt_traces.web")

MAX_FORM_BYTES = 1_000_000
CONTENT_PARTS = ("blocks", "variables", "model", "tools")
SINCE_CHOICES = ("", "1h", "24h", "7d", "30d")
STATS_WINDOWS = {"24h": (24, 3600), "7d": (14, 12 * 3600), "30d": (30, 24 * 3600)}
PROVIDERS = ("openai", "anthropic", "agnt-local", "gemini", "mistral", "ollama", "azure", "bedrock", "groq")


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("agnt_traces.web", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    )
    env.filters["money"] = _money
    env.filters["secs"] = _secs
    env.filters["when"] = _when
    env.filters["pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=2, sort_keys=True)
    env.filters["delta"] = _delta
    env.globals["message_text"] = message_text
    return env


def _money(value: Any) -> str:
    if value is None:
        return "—"
    return f"${value:.6f}".rstrip("0").rstrip(".") if value < 1 else f"${value:,.2f}"


def _secs(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _when(value: Any) -> str:
    return str(value or "").replace("T", " ").replace("Z", "")[:19]


def _delta(value: Any, kind: str = "") -> str:
    if value is None:
        return "—"
    sign = "+" if value > 0 else ("−" if value < 0 else "±")
    magnitude = abs(value)
    if kind == "cost":
        return sign + _money(magnitude)
    if kind == "secs":
        return sign + _secs(magnitude)
    return f"{sign}{magnitude:g}"


@dataclass
class WebOptions:
    """``local_tenant``: ``agnt-traces ui`` — no sign-in, everything is this tenant's, and only requests
    whose Host header is one of ``allowed_hosts`` are answered (a web site the person visits cannot
    rebind its name to 127.0.0.1 and read the page)."""

    local_tenant: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)


class Forbidden(Exception):
    """A POST without this session's CSRF token, or a Host this local server does not answer."""


@dataclass
class Ctx:
    request: Request
    app: App
    session: WebSession
    tenant: str
    new_cookie: bool = False
    form: dict[str, list[str]] = field(default_factory=dict)

    def one(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default

    def many(self, name: str) -> list[str]:
        return self.form.get(name, [])


Handler = Callable[[Ctx], Awaitable[Response]]


def _text(value: str) -> str:
    """Text from a form field: browsers send CRLF line ends from a textarea; prompts use LF."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _opt(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


class Pages:
    def __init__(self, get_app: Callable[[], App], options: WebOptions, sessions: WebSessions | None = None) -> None:
        self.get_app = get_app
        self.options = options
        self.sessions = sessions or WebSessions()
        self.env = _env()

    # -- plumbing -------------------------------------------------------------------------------------

    def render(self, ctx: Ctx | None, template: str, status: int = 200, **data: Any) -> HTMLResponse:
        base: dict[str, Any] = {"local": self.options.local_tenant is not None, "nav": "", "notices": []}
        if ctx is not None:
            base |= {"csrf": ctx.session.csrf, "tenant": ctx.tenant, "notices": ctx.session.take_notices()}
        html = self.env.get_template(template).render({**base, **data})
        response = HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})
        if ctx is not None and ctx.new_cookie:
            self._set_cookie(response, ctx.request, ctx.session)
        return response

    @staticmethod
    def _set_cookie(response: Response, request: Request, session: WebSession) -> None:
        response.set_cookie(
            COOKIE,
            session.id,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def redirect(self, ctx: Ctx, to: str) -> Response:
        response = RedirectResponse(to, status_code=303)
        if ctx.new_cookie:
            self._set_cookie(response, ctx.request, ctx.session)
        return response

    def error_page(self, ctx: Ctx | None, status: int, title: str, message: str) -> HTMLResponse:
        return self.render(ctx, "error.html", status=status, title=title, message=message)

    def check_host(self, request: Request) -> None:
        if self.options.allowed_hosts and request.headers.get("host", "").lower() not in self.options.allowed_hosts:
            raise Forbidden("this local page answers only to its own address")

    async def _session(self, request: Request) -> tuple[WebSession | None, bool]:
        """The request's session, signed in or not (None: none yet). In local mode every browser gets one."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None and self.options.local_tenant is not None:
            return self.sessions.create(tenant=self.options.local_tenant), True
        if session is not None and session.token_hash is not None:
            # Revoking the token ends the sessions it opened (checked by hash; the token is not kept).
            tenant = await self.get_app().tokens.tenant_for_hash(session.token_hash)
            if tenant != session.tenant:
                self.sessions.drop(session.id)
                return None, False
        return session, False

    @staticmethod
    async def _form(request: Request) -> dict[str, list[str]]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise Forbidden("forms are posted as application/x-www-form-urlencoded")
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise InvalidArgument(f"the form is larger than {MAX_FORM_BYTES} bytes")
        out: dict[str, list[str]] = {}
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            out.setdefault(key, []).append(value)
        return out

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A signed-in page or action: session, CSRF on POST, and our errors as pages."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            ctx: Ctx | None = None
            try:
                self.check_host(request)
                session, new = await self._session(request)
                if session is None or session.tenant is None:
                    if request.method == "GET":
                        return RedirectResponse("/signin", status_code=303)
                    return self.error_page(None, 401, "Signed out", "Sign in again, then repeat what you did.")
                ctx = Ctx(request, self.get_app(), session, session.tenant, new_cookie=new)
                if request.method == "POST":
                    ctx.form = await self._form(request)
                    if not session.csrf_ok(ctx.one("csrf")):
                        raise Forbidden("this form has expired or did not come from this page: reload it and retry")
                return await handler(ctx)
            except Forbidden as exc:
                return self.error_page(ctx, 403, "Refused", str(exc))
            except NotFound:
                return self.error_page(ctx, 404, "Not found", "There is nothing here, or it belongs to someone else.")
            except AgntError as err:
                return self.error_page(ctx, err.http_status, "That did not work", err.message)
            except Exception:
                log_failure(logger, "web page %s failed", request.url.path)
                return self.error_page(ctx, 500, "Internal error", "Something went wrong; the server log has details.")

        return endpoint

    # -- sign in / out --------------------------------------------------------------------------------

    async def signin_form(self, request: Request) -> Response:
        try:
            self.check_host(request)
        except Forbidden as exc:
            return self.error_page(None, 403, "Refused", str(exc))
        if self.options.local_tenant is not None:
            return RedirectResponse("/", status_code=303)
        session, _ = await self._session(request)
        if session is not None and session.tenant is not None:
            return RedirectResponse("/", status_code=303)
        if session is None:  # an anonymous session: it only carries the sign-in form's CSRF token
            session = self.sessions.create()
        response = self.env.get_template("signin.html").render(csrf=session.csrf, error=None, local=False, nav="")
        out = HTMLResponse(response, headers={"cache-control": "no-store"})
        self._set_cookie(out, request, session)
        return out

    async def signin(self, request: Request) -> Response:
        if self.options.local_tenant is not None:
            return RedirectResponse("/", status_code=303)
        session = self.sessions.get(request.cookies.get(COOKIE))
        try:
            form = await self._form(request)
        except (Forbidden, InvalidArgument) as exc:
            return self.error_page(None, 403, "Refused", str(exc))
        if session is None or not session.csrf_ok((form.get("csrf") or [""])[0]):
            return self.error_page(None, 403, "Refused", "the sign-in form expired: open /signin again")
        token = (form.get("token") or [""])[0].strip()
        tenant = None
        if token and len(token) <= 512 and " " not in token:
            tenant = await self.get_app().tokens.tenant_for(token)
        if tenant is None:
            html = self.env.get_template("signin.html").render(
                csrf=session.csrf,
                error="That token is not valid (or was revoked). Ask for one made with 'agnt-traces token create'.",
                local=False,
                nav="",
            )
            return HTMLResponse(html, status_code=401, headers={"cache-control": "no-store"})
        self.sessions.drop(session.id)  # a new id once signed in: a planted cookie never becomes signed in
        signed = self.sessions.create(tenant=tenant, token_hash=hash_token(token))
        response = RedirectResponse("/", status_code=303)
        self._set_cookie(response, request, signed)
        return response

    async def signout(self, ctx: Ctx) -> Response:
        self.sessions.drop(ctx.session.id)
        response = RedirectResponse("/signin" if self.options.local_tenant is None else "/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- traces ---------------------------------------------------------------------------------------

    async def traces(self, ctx: Ctx) -> Response:
        params = ctx.request.query_params
        form = {k: params.get(k, "") for k in TRACE_FILTERS}
        args: dict[str, Any] = {
            "status": _opt(form["status"]),
            "prompt_name": _opt(form["prompt_name"]),
            "model": _opt(form["model"]),
            "tags": [t.strip() for t in form["tags"].split(",") if t.strip()] or None,
            "since": _opt(form["since"]),
            "until": _opt(form["until"]),
            "query": _opt(form["query"]),
            "sort": _opt(form["sort"]) or "created_at",
            "order": _opt(form["order"]) or "desc",
            "limit": 50,
            "cursor": _opt(params.get("cursor")),
        }
        error = None
        page: dict[str, Any] = {"traces": [], "nextCursor": None}
        try:
            for name, kind in (("prompt_version", int), ("min_cost", float), ("min_duration", float)):
                if _opt(form[name]):
                    try:
                        args[name] = kind(form[name])
                    except ValueError:
                        raise InvalidArgument(f"{name.replace('_', ' ')} must be a number") from None
            page = (await ctx.app.traces.list(ctx.tenant, validate_query(TraceQuery, args))).render()
        except InvalidArgument as err:
            error = err.message
        prompts = (await ctx.app.prompts.list(ctx.tenant)).render()["prompts"]
        keep = {k: v for k, v in form.items() if v}
        next_url = "/?" + urlencode({**keep, "cursor": page["nextCursor"]}) if page["nextCursor"] else None
        first_url = "/?" + urlencode(keep) if args["cursor"] else None
        return self.render(
            ctx,
            "traces.html",
            status=400 if error else 200,
            nav="traces",
            form=form,
            rows=page["traces"],
            error=error,
            prompts=[p["name"] for p in prompts],
            since_choices=SINCE_CHOICES,
            next_url=next_url,
            first_url=first_url,
        )

    async def trace(self, ctx: Ctx) -> Response:
        trace_id = ctx.request.path_params["trace_id"]
        trace = await ctx.app.traces.get(ctx.tenant, trace_id)
        data = trace.to_json()
        against = _opt(ctx.request.query_params.get("against"))
        diff: dict[str, Any] | None = None
        diff_error = None
        if trace.prompt_name:
            try:
                diff = (await ctx.app.playground.diff_trace(ctx.tenant, trace.id, against)).render()
            except AgntError as err:
                diff_error = err.message
        files = diff_files(diff["unified"]) if diff else []
        return self.render(
            ctx,
            "trace.html",
            nav="traces",
            t=data,
            diff=diff,
            diff_error=diff_error,
            against=against or "",
            content_files=[f for f in files if f.part in CONTENT_PARTS],
            rendered_files=[f for f in files if f.part == "messages"],
        )

    async def open_playground(self, ctx: Ctx) -> Response:
        view = await ctx.app.playground.open(ctx.tenant, ctx.request.path_params["trace_id"])
        return self.redirect(ctx, f"/playground/{view.id}")

    # -- playground -----------------------------------------------------------------------------------

    async def playground(self, ctx: Ctx, *, conflict: Conflict | None = None, status: int = 200) -> Response:
        sid = ctx.request.path_params["session_id"]
        view = await ctx.app.playground.get(ctx.tenant, sid)
        trace = (await ctx.app.traces.get(ctx.tenant, view.trace_id)).to_json()
        compiled: dict[str, Any] | None = None
        compile_error = None
        try:
            compiled = (await ctx.app.playground.compile(ctx.tenant, sid)).render()
        except AgntError as err:
            compile_error = err.message
        diff: SessionDiff | None = None
        diff_error = None
        try:
            diff = await ctx.app.playground.diff(ctx.tenant, sid)
        except AgntError as err:
            diff_error = err.message
        files = diff_files(diff.unified) if diff else []
        latest = {run.model: run.render() for run in view.runs}  # oldest first: each model's latest
        deltas = {m.model: m.deltas.render() for m in diff.models} if diff else {}
        conflict_files = diff_files((conflict.details.get("diff") or {}).get("unified")) if conflict else []
        return self.render(
            ctx,
            "playground.html",
            status=status,
            nav="traces",
            s=view.render(),
            t=trace,
            compiled=compiled,
            compile_error=compile_error,
            diff=diff.render() if diff else None,
            diff_error=diff_error,
            content_files=[f for f in files if f.part in CONTENT_PARTS],
            message_files=[f for f in files if f.part == "messages"],
            output_files={f.path.split("/", 1)[1]: f for f in files if f.part == "output"},
            latest=latest,
            deltas=deltas,
            model_choices=self._model_choices(ctx.app, view, trace),
            endpoints=[e.url.text() for e in ctx.app.settings.policy().endpoints],
            providers=PROVIDERS,
            conflict=conflict,
            conflict_files=conflict_files,
        )

    async def playground_page(self, ctx: Ctx) -> Response:
        return await self.playground(ctx)

    @staticmethod
    def _model_choices(app: App, view: SessionView, trace: dict[str, Any]) -> list[dict[str, Any]]:
        """The models offered as checkboxes: the session's, the trace's and the offline model."""
        seen: dict[str, dict[str, Any]] = {}
        models = [m.model_dump(mode="json") for m in view.models]
        chosen = [json.dumps(m, sort_keys=True) for m in models]
        candidates = [*models, {"provider": "agnt-local", "name": "echo", "params": {}}]
        for m in candidates:
            key = json.dumps(m, sort_keys=True)
            if key not in seen:
                base = m.get("params", {}).get("api_base")
                label = f"{m['provider']}/{m['name']}" + (f" at {base}" if base else "")
                seen[key] = {"value": key, "label": label, "checked": key in chosen}
        return list(seen.values())

    async def edit_block(self, ctx: Ctx) -> Response:
        sid = ctx.request.path_params["session_id"]
        action = ctx.one("op", "update")
        block_id = ctx.one("block_id")
        play = ctx.app.playground
        if action == "insert":
            await play.edit_block(
                ctx.tenant,
                sid,
                ctx.one("new_id").strip(),
                "insert",
                content=_text(ctx.one("content")),
                role=ctx.one("role") or "user",
                condition=_opt(ctx.one("condition")),
                after=_opt(ctx.one("after")),
            )
            ctx.session.notice(f"Block {ctx.one('new_id').strip()!r} inserted.")
        elif action == "delete":
            await play.edit_block(ctx.tenant, sid, block_id, "delete")
            ctx.session.notice(f"Block {block_id!r} deleted.")
        elif action in ("up", "down"):
            ids = [b.id for b in (await play.get(ctx.tenant, sid)).blocks]
            if block_id not in ids:
                raise NotFound(f"block {block_id!r} not found")
            i = ids.index(block_id)
            if (action == "up" and i > 0) or (action == "down" and i < len(ids) - 1):
                after = (ids[i - 2] if i >= 2 else None) if action == "up" else ids[i + 1]
                await play.edit_block(ctx.tenant, sid, block_id, "move", after=after)
                ctx.session.notice(f"Block {block_id!r} moved {action}.")
        elif action == "update":
            await play.edit_block(
                ctx.tenant,
                sid,
                block_id,
                "update",
                content=_text(ctx.one("content")),
                condition=_text(ctx.one("condition")),
                role=ctx.one("role") or None,
            )
            ctx.session.notice(f"Block {block_id!r} updated.")
        else:
            raise InvalidArgument(f"unknown block action {action!r}")
        return self.redirect(ctx, f"/playground/{sid}#blocks")

    async def update_variables(self, ctx: Ctx) -> Response:
        sid = ctx.request.path_params["session_id"]
        view = await ctx.app.playground.get(ctx.tenant, sid)
        values: dict[str, Any] = {}
        for decl in view.variables.declarations:
            name, kind = decl.name, decl.type
            field_name = f"var.{name}"
            if field_name not in ctx.form:
                continue
            raw = _text(ctx.one(field_name))
            if kind == "string":
                values[name] = raw
            elif not raw.strip():
                values[name] = None
            else:
                try:
                    values[name] = json.loads(raw)
                except ValueError:
                    raise InvalidArgument(
                        f"variable {name!r} ({kind}) must be written as JSON, e.g. "
                        + {"number": "1.5", "integer": "3", "boolean": "true", "list": '["a", "b"]'}.get(
                            kind, '{"k": 1}'
                        ),
                        {"field": name},
                    ) from None
        await ctx.app.playground.update_variables(ctx.tenant, sid, values)
        ctx.session.notice("Variables updated.")
        return self.redirect(ctx, f"/playground/{sid}#variables")

    async def update_models(self, ctx: Ctx) -> Response:
        sid = ctx.request.path_params["session_id"]
        models: list[Any] = []
        for raw in ctx.many("model"):
            try:
                models.append(json.loads(raw))
            except ValueError:
                raise InvalidArgument("a model choice was not understood: reload the page") from None
        provider, name = _opt(ctx.one("new_provider")), _opt(ctx.one("new_name"))
        if name:
            params = {"api_base": ctx.one("new_endpoint")} if _opt(ctx.one("new_endpoint")) else {}
            models.append({"provider": provider or "openai", "name": name, "params": params})
        if not models:
            raise InvalidArgument("pick at least one model")
        await ctx.app.playground.update_models(ctx.tenant, sid, models)
        ctx.session.notice(f"Models: {', '.join(m['provider'] + '/' + m['name'] for m in models)}.")
        return self.redirect(ctx, f"/playground/{sid}#models")

    async def run(self, ctx: Ctx) -> Response:
        sid = ctx.request.path_params["session_id"]
        result = await ctx.app.playground.run(ctx.tenant, sid)
        summary = ", ".join(f"{r.model}: {r.status}" for r in result.runs)
        failed = any(r.status != "success" for r in result.runs)
        ctx.session.notice(f"Ran — {summary}.", "error" if failed else "ok")
        return self.redirect(ctx, f"/playground/{sid}#outputs")

    async def save(self, ctx: Ctx) -> Response:
        sid = ctx.request.path_params["session_id"]
        try:
            saved = await ctx.app.playground.save(
                ctx.tenant,
                sid,
                force=ctx.one("force") == "1",
                prompt_name=_opt(ctx.one("prompt_name")),
                replace_draft=ctx.one("replace_draft") == "1",
            )
        except Conflict as conflict:
            return await self.playground(ctx, conflict=conflict, status=409)
        ctx.session.notice(
            f"Saved to the draft of {saved.prompt} (revision {saved.draft_revision}). "
            "Check the draft against production below, then publish."
        )
        return self.redirect(ctx, f"/prompts/{saved.prompt}")

    async def delete_session(self, ctx: Ctx) -> Response:
        sid = ctx.request.path_params["session_id"]
        view = await ctx.app.playground.get(ctx.tenant, sid)
        await ctx.app.playground.delete(ctx.tenant, sid)
        ctx.session.notice("Playground closed.")
        return self.redirect(ctx, f"/traces/{view.trace_id}")

    # -- prompts --------------------------------------------------------------------------------------

    async def prompts(self, ctx: Ctx) -> Response:
        listed = await ctx.app.prompts.list(ctx.tenant)
        return self.render(ctx, "prompts.html", nav="prompts", prompts=listed.render()["prompts"])

    async def prompt(self, ctx: Ctx) -> Response:
        from ..diff import diff_content

        name = ctx.request.path_params["name"]
        raw_version = _opt(ctx.request.query_params.get("version"))
        version = int(raw_version) if raw_version and raw_version.isdigit() else None
        if raw_version and version is None:
            raise InvalidArgument("version must be a number: 1, 2, …")
        shown = await ctx.app.prompts.get(ctx.tenant, name, version=version)
        rec, draft, _, _ = await ctx.app.prompts.resolve(ctx.tenant, name)
        files: list[DiffFile] = []
        production_version = rec.labels.get("production")
        if production_version is not None:
            _, production, _, _ = await ctx.app.prompts.resolve(ctx.tenant, name, label="production")
            files = diff_files(diff_content(production, draft).unified)
        return self.render(
            ctx,
            "prompt.html",
            nav="prompts",
            p=shown.render(),
            production_version=production_version,
            draft_files=files,
            draft_equals_production=production_version is not None and not files,
        )

    async def publish(self, ctx: Ctx) -> Response:
        name = ctx.request.path_params["name"]
        raw_version = _opt(ctx.one("version"))
        label = _opt(ctx.one("label")) or "production"
        version = int(raw_version) if raw_version and raw_version.isdigit() else None
        if raw_version and version is None:
            raise InvalidArgument("version must be a number")
        try:
            done = await ctx.app.prompts.publish(
                ctx.tenant,
                name,
                version=version,
                label=label,
                note=ctx.one("note").strip(),
                expected_etag=None if version is not None else (_opt(ctx.one("expected_etag")) or "*"),
            )
        except Conflict as err:
            ctx.session.notice(
                err.message + " — the page below shows the draft as it is now: review it and publish again.", "error"
            )
            return self.redirect(ctx, f"/prompts/{name}")
        verb = "moved to" if version is not None else "published as"
        ctx.session.notice(f"{done.name}: {label} {verb} version {done.version}.")
        return self.redirect(ctx, f"/prompts/{name}")

    # -- stats ----------------------------------------------------------------------------------------

    async def stats(self, ctx: Ctx) -> Response:
        params = ctx.request.query_params
        window = params.get("window", "24h")
        if window not in STATS_WINDOWS:
            window = "24h"
        group = params.get("group", "prompt") if params.get("group") in ("prompt", "model") else "prompt"
        prompt_name = _opt(params.get("prompt_name"))
        buckets, width_s = STATS_WINDOWS[window]
        hour = 3600 * 1000
        end = (now_ms() // hour + 1) * hour
        start = end - buckets * width_s * 1000
        svc = ctx.app.traces
        window_query = {
            "group_by": group,
            "since": ms_to_rfc3339(start),
            "until": ms_to_rfc3339(end),
            "prompt_name": prompt_name,
        }
        totals = (await svc.stats(ctx.tenant, validate_query(StatsQuery, window_query))).render()
        for g in totals["groups"]:
            g["label"] = _group_label(g["group"])
        top = [g["label"] for g in totals["groups"][: len(SERIES_CLASSES)]]
        per_bucket: list[dict[str, dict[str, Any]]] = []
        labels = []
        for i in range(buckets):
            lo = start + i * width_s * 1000
            hi = lo + width_s * 1000
            q = validate_query(
                StatsQuery,
                {"group_by": group, "since": ms_to_rfc3339(lo), "until": ms_to_rfc3339(hi), "prompt_name": prompt_name},
            )
            groups = (await svc.stats(ctx.tenant, q)).render()["groups"]
            per_bucket.append({_group_label(g["group"]): g for g in groups})
            stamp = ms_to_rfc3339(lo)
            labels.append(stamp[11:16] if width_s < 86400 else stamp[5:10])

        def series(key: str) -> list[tuple[str, list[float | None]]]:
            return [(name, [b[name][key] if name in b else None for b in per_bucket]) for name in top]

        charts = [
            ("Error rate", line_chart("Error rate", labels, series("errorRate"), lambda v: f"{v:.0%}")),
            ("p50 latency", line_chart("p50 latency", labels, series("p50Duration"), _secs)),
            ("p95 latency", line_chart("p95 latency", labels, series("p95Duration"), _secs)),
            ("Tokens", line_chart("Tokens", labels, series("totalTokens"), lambda v: f"{v:,.0f}")),
            ("Cost", line_chart("Cost", labels, series("cost"), _money)),
        ]
        prompts = (await ctx.app.prompts.list(ctx.tenant)).render()["prompts"]
        return self.render(
            ctx,
            "stats.html",
            nav="stats",
            window=window,
            windows=list(STATS_WINDOWS),
            group=group,
            prompt_name=prompt_name or "",
            prompts=[p["name"] for p in prompts],
            totals=totals["groups"],
            legend=[(name, SERIES_CLASSES[i]) for i, name in enumerate(top)],
            charts=charts,
        )


def _group_label(group: dict[str, Any]) -> str:
    if "model" in group:
        return f"{group['provider']}/{group['model']}"
    return str(group.get("promptName") or "(no prompt)")


TRACE_FILTERS = (
    "query",
    "status",
    "prompt_name",
    "prompt_version",
    "model",
    "tags",
    "since",
    "until",
    "min_cost",
    "min_duration",
    "sort",
    "order",
)
