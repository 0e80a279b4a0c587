"""The prompt registry and prompt runs: drafts, versions, labels, publish, rollback, run."""

from __future__ import annotations

import builtins
import re
from typing import Any

from pydantic import ValidationError

from ..compile_pool import check_content_async, compile_prompt_async
from ..compiler.analysis import check_sizes
from ..config import Settings
from ..errors import InvalidArgument, NotFound, from_validation_error
from ..golden_models import GateRecord
from ..llm.policy import ModelPolicy
from ..llm.providers import check_provider
from ..models import MAX_INT, PROMPT_NAME_RE, PromptContent
from ..prompt_records import PromptPick, PromptRecord
from ..store.base import Store
from .contentcache import ContentCache
from .prompt_results import (
    ImportedDraft,
    ImportState,
    LabelMoveEntry,
    PromptDetail,
    PromptList,
    PromptSummary,
    PromptVersions,
    PublishResult,
    RunPromptResult,
    RunTrace,
    UpsertResult,
    VersionEntry,
)
from .runner import CallContext, Runner, raise_for_error
from .traces import TraceService

__all__ = ["PromptService", "check_prompt_name", "parse_content"]

LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_prompt_name(name: str, field: str = "name") -> str:
    if not isinstance(name, str) or not PROMPT_NAME_RE.match(name):
        raise InvalidArgument(
            f"{field} {name!r} is invalid: use 1-128 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit",
            {"field": field},
        )
    return name


def check_label(label: str) -> str:
    if not LABEL_RE.match(label) or label == "draft":
        raise InvalidArgument(
            f"label {label!r} is invalid: use 1-64 characters of a-z, 0-9, '.', '_' or '-' ('draft' is reserved)",
            {"field": "label"},
        )
    return label


def parse_content(content: Any, policy: ModelPolicy | None, field: str = "content") -> PromptContent:
    """Validate prompt content: the provider must be one LiteLLM knows and, with a policy, model params it
    would not send are refused (credentials, unknown params, endpoints that are not the operator's,
    headers, a timeout above the limit). ``policy=None`` is for edits that keep the model as it is.

    Raises:
        InvalidArgument: naming every bad field.
        CompileError: naming every block whose template is over the size limits (parsing is left to
            ``check_content``).
    """
    if isinstance(content, PromptContent):
        parsed = content
    else:
        try:
            parsed = PromptContent.model_validate(content)
        except ValidationError as exc:
            raise from_validation_error(exc, field) from None
    if policy is not None:  # the model is being written
        check_provider(parsed.model.provider, f"{field}.model.provider")
        policy.check_params(parsed.model.params)
    check_sizes(parsed)
    return parsed


class PromptService:
    def __init__(self, store: Store, traces: TraceService, settings: Settings) -> None:
        self.store = store
        self.traces = traces
        self.settings = settings
        self.runner = Runner(traces, settings)
        self._contents = ContentCache()  # versions' contents by etag: immutable, read on every run

    async def record(self, tenant: str, name: str) -> PromptRecord:
        check_prompt_name(name)
        rec = await self.store.get_prompt(tenant, name)
        if rec is None:
            raise NotFound(
                f"prompt {name!r} not found: list_prompts shows the prompts of this tenant; upsert_prompt creates one",
                {"prompt": name},
            )
        return rec

    async def records(self, tenant: str) -> builtins.list[PromptRecord]:
        """Every prompt of the tenant as stored, with its draft (``prompts export`` writes them out)."""
        return await self.store.list_prompts(tenant)

    async def list(self, tenant: str) -> PromptList:
        return PromptList.model_construct(prompts=[PromptSummary.of(r) for r in await self.store.list_prompts(tenant)])

    async def resolve(
        self, tenant: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> tuple[PromptRecord, PromptContent, int | None, str]:
        """The content to use: a version, a label's version, or the draft. Returns (record, content,
        version or None for the draft, what was selected)."""
        rec = await self.record(tenant, name)
        if version is not None and label is not None:
            raise InvalidArgument("pass version or label, not both", {"field": "version"})
        if version is None and label in (None, "draft"):
            return rec, rec.draft, None, "draft"
        if label is not None:
            if label not in rec.labels:
                known = ", ".join(sorted(rec.labels)) or "none yet"
                raise NotFound(
                    f"prompt {name!r} has no label {label!r} (labels: {known}); publish_prompt creates "
                    "'production', or use label 'draft'",
                    {"prompt": name, "label": label},
                )
            version = rec.labels[label]
        entry = None if version is None else rec.find_version(version)
        if entry is None:
            have = ", ".join(str(v.version) for v in rec.versions) or "none yet"
            raise NotFound(
                f"prompt {name!r} has no version {version} (versions: {have})", {"prompt": name, "version": version}
            )
        content = self._contents.get(tenant, entry.etag)
        if content is None:
            content = await self.store.get_content(tenant, entry.etag)
            assert content is not None, "a version's content is kept by etag"
            self._contents.put(tenant, entry.etag, content)
        return rec, content, version, label or f"version {version}"

    async def pick(
        self, tenant: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> tuple[PromptPick, PromptContent]:
        """What :meth:`resolve` selects, reading only the selection (the content comes from the cache by its
        etag): what running a prompt needs. The same errors as :meth:`resolve`."""
        check_prompt_name(name)
        pick = None
        if version is None or label is None:  # both: resolve says which is wrong
            pick = await self.store.pick_prompt(tenant, name, label=label, version=version)
        if pick is None:  # no such prompt, label or version: resolve raises the error that lists what there is
            rec, content, chosen, _ = await self.resolve(tenant, name, version=version, label=label)
            published_as = None
            if chosen is None:
                published_as = await self.store.version_for_etag(tenant, name, content.etag)
            return PromptPick(rec.name, chosen, content.etag, published_as), content
        cached = self._contents.get(tenant, pick.etag)
        if cached is not None:
            return pick, cached
        stored = await self.store.get_content(tenant, pick.etag)
        assert stored is not None, "a prompt's contents are kept by etag"
        self._contents.put(tenant, pick.etag, stored)
        return pick, stored

    async def get(
        self, tenant: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> PromptDetail:
        rec, content, chosen, selected = await self.resolve(tenant, name, version=version, label=label)
        versions, history = await self._versions_and_history(tenant, rec)
        return PromptDetail.model_construct(
            **PromptSummary.fields_of(rec),
            selected=selected,
            version=chosen,
            etag=content.etag,
            content=content,
            versions=versions,
            history=history,
        )

    async def versions(self, tenant: str, name: str) -> PromptVersions:
        """A prompt's versions, labels and label history, without content."""
        rec = await self.record(tenant, name)
        versions, history = await self._versions_and_history(tenant, rec)
        return PromptVersions.model_construct(
            name=rec.name,
            draft_revision=rec.draft_revision,
            draft_etag=rec.draft_etag,
            versions=versions,
            labels=rec.labels,
            history=history,
        )

    async def _versions_and_history(
        self, tenant: str, rec: PromptRecord
    ) -> tuple[builtins.list[VersionEntry], builtins.list[LabelMoveEntry]]:
        """Each version and label move, with what let its version through the gate where it had one."""
        gates = await self.store.version_gates(tenant, rec.name)
        history = await self.store.label_history(tenant, rec.name)
        return (
            [VersionEntry.of(v, gates.get(v.version)) for v in rec.versions],
            [LabelMoveEntry.of(m, gates.get(m.version)) for m in history],
        )

    async def upsert(self, tenant: str, name: str, content: Any, description: str | None = None) -> UpsertResult:
        check_prompt_name(name)
        parsed = parse_content(content, self.settings.policy())
        warnings = await check_content_async(parsed)
        rec = await self.store.save_draft(tenant, name, parsed, description=description)
        return UpsertResult.model_construct(**PromptSummary.fields_of(rec), etag=parsed.etag, warnings=warnings)

    async def import_drafts(
        self, tenant: str, drafts: builtins.list[tuple[str, str, PromptContent]]
    ) -> builtins.list[ImportedDraft]:
        """Save drafts ``(name, description, content)`` (already checked, as ``promptfiles`` loads them) in
        one transaction: all or nothing. Each answer says whether the draft was created, updated or unchanged.
        """
        for name, _, _ in drafts:
            check_prompt_name(name)
        before = {name: await self.store.get_prompt(tenant, name) for name, _, _ in drafts}
        saved = await self.store.save_drafts(tenant, [(n, c, d) for n, d, c in drafts])
        out = []
        for rec in saved:
            old = before[rec.name]
            state: ImportState = (
                "created" if old is None else ("unchanged" if old.draft_revision == rec.draft_revision else "updated")
            )
            out.append(ImportedDraft.model_construct(**PromptSummary.fields_of(rec), state=state))
        return out

    async def publish(
        self,
        tenant: str,
        name: str,
        *,
        version: int | None = None,
        label: str = "production",
        note: str = "",
        expected_etag: str | None = None,
        gate: GateRecord | None = None,
    ) -> PublishResult:
        """Publish the draft (or, with ``version``, move the label to that version). ``gate``: what let the
        draft through its gate (``GoldenService.publish`` passes it), recorded on the version.

        ``expected_etag``: the draft etag the caller saw (``get_prompt``/``upsert_prompt`` give it); a draft
        that moved since is refused. ``"*"`` means any draft.

        Raises:
            PreconditionFailed: the draft's etag differs from ``expected_etag`` (code ``conflict``).
            InvalidArgument: ``expected_etag`` with ``version`` (a label move publishes no draft).
        """
        check_prompt_name(name)
        check_label(label)
        if version is not None and not 1 <= version <= MAX_INT:
            raise InvalidArgument(f"version {version} is not a version number (1, 2, …)", {"field": "version"})
        if expected_etag is not None and (not isinstance(expected_etag, str) or not expected_etag.strip()):
            raise InvalidArgument(
                "expected_etag must be the draftEtag that get_prompt returned (or '*'); omit it to publish "
                "whatever the draft is",
                {"field": "expected_etag"},
            )
        if version is not None:
            if expected_etag is not None and expected_etag != "*":
                raise InvalidArgument(
                    "expected_etag checks the draft, and moving a label to a version publishes no draft: "
                    "omit expected_etag (or If-Match) when passing version",
                    {"field": "expected_etag"},
                )
            rec = await self.store.move_label(tenant, name, label, version, note)
        else:
            expected = None if expected_etag in (None, "*") else expected_etag
            rec = await self.store.publish(tenant, name, label, note, expected_etag=expected, gate=gate)
        moved_to = rec.labels[label]
        moved = rec.find_version(moved_to)
        assert moved is not None, "a label points at a version of its prompt"
        return PublishResult.model_construct(
            **PromptSummary.fields_of(rec), label=label, version=moved_to, etag=moved.etag, gate=gate
        )

    async def run(
        self,
        tenant: str,
        name: str,
        *,
        variables: dict[str, Any] | None = None,
        messages: builtins.list[dict[str, Any]] | None = None,
        label: str | None = None,
        version: int | None = None,
        tags: builtins.list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RunPromptResult:
        """Compile (label ``production`` unless told otherwise), call the model, record the trace, return it.

        Raises:
            ModelError: the call failed; the failure is recorded as a trace whose id is in ``details``.
        """
        if version is None and label is None:
            label = "production"
        pick, content = await self.pick(tenant, name, version=version, label=label)
        # The content was read from the store by its etag (drafts and versions alike), so it stays
        # reopenable by etag without being written again.
        compiled = await compile_prompt_async(content, variables or {}, messages or [])
        # The draft: if it equals a published version, say which.
        chosen = pick.version if pick.version is not None else pick.published_as
        trace = await self.runner.run(
            tenant,
            compiled,
            content.model,
            CallContext(
                prompt_name=pick.name, prompt_version=chosen, source="run", tags=tags or [], metadata=metadata or {}
            ),
        )
        raise_for_error(trace)
        return RunPromptResult.model_construct(trace=RunTrace.of(trace), warnings=compiled.warnings)
