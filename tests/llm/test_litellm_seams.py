"""llm/litellm_seams.py, the one private LiteLLM switch we use, checked against the pinned version.

If LiteLLM is upgraded, or changes how ``internal_sub_call`` works, these fail: either calls log again
(CPU back on the answer's path) or, worse, an application's own callbacks stop hearing of our calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from typing import Any

import anyio
import pytest

from agnt_traces import llm
from agnt_traces.llm import CallSettings, call_model, load_litellm
from agnt_traces.llm.litellm_seams import CALLBACK_LISTS, PINNED_LITELLM_VERSION, has_callbacks, unobserved
from agnt_traces.models import ModelConfig
from modelserver import ModelServer
from netguard import no_network  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_network")]

ECHO = ModelConfig(provider="agnt-local", name="echo")
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
async def _close_litellm_clients() -> AsyncIterator[None]:
    yield
    await llm.aclose()


@pytest.fixture(autouse=True)
def _no_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever other tests of this process registered with LiteLLM is set aside (and put back after)."""
    litellm = load_litellm()
    for name in CALLBACK_LISTS:
        monkeypatch.setattr(litellm, name, [])


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts LiteLLM's async success logging, the work the seam skips (one entry per logged call)."""
    litellm = load_litellm()
    logging_cls = litellm.litellm_core_utils.litellm_logging.Logging
    original = logging_cls.async_success_handler
    seen: list[str] = []

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(self.model))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(logging_cls, "async_success_handler", counted)
    yield seen


async def _settle() -> None:
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    await anyio.sleep(0.05)
    await GLOBAL_LOGGING_WORKER.flush()
    await anyio.sleep(0.05)


async def test_the_pinned_litellm_is_installed() -> None:
    assert version("litellm") == PINNED_LITELLM_VERSION, "litellm was upgraded: re-check llm/litellm_seams.py"


async def test_a_plain_call_logs_but_ours_does_not(handled: list[str]) -> None:
    litellm = load_litellm()
    assert not has_callbacks(litellm), "a test left a LiteLLM callback registered"
    await litellm.acompletion(model="agnt-local/echo", messages=MESSAGES, num_retries=0, max_retries=0)
    await _settle()
    assert len(handled) == 1, "the counter no longer sees LiteLLM's logging: the check below would prove nothing"

    result = await call_model(ECHO, "be brief", MESSAGES)
    await _settle()
    assert result.status == "success" and result.input_tokens > 0 and result.cost == 0.0
    assert len(handled) == 1, "call_model dispatched LiteLLM's logging although nobody listens"


class _Listener:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.failures: list[str] = []

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.events.append(str(kwargs.get("model")))

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.failures.append(str(kwargs.get("model")))


def _listen(monkeypatch: pytest.MonkeyPatch) -> _Listener:
    litellm = load_litellm()
    from litellm.integrations.custom_logger import CustomLogger

    listener = type("Listener", (_Listener, CustomLogger), {})()
    _Listener.__init__(listener)
    for name in CALLBACK_LISTS:  # LiteLLM copies a callback into its other lists: all are put back after
        monkeypatch.setattr(litellm, name, list(getattr(litellm, name)))
    litellm.callbacks.append(listener)
    assert has_callbacks(litellm)
    return listener


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_an_applications_callback_still_hears_our_calls(monkeypatch: pytest.MonkeyPatch, stream: bool) -> None:
    listener = _listen(monkeypatch)
    result = await call_model(ECHO, "be brief", MESSAGES, settings=CallSettings(stream=stream))
    await _settle()
    assert result.status == "success"
    assert listener.events == ["echo"], "a registered callback missed a call made by the server"


async def test_an_applications_callback_hears_our_failed_calls(
    monkeypatch: pytest.MonkeyPatch, model_server: ModelServer
) -> None:
    listener = _listen(monkeypatch)
    failing = ModelConfig(provider="openai", name="mock-fail-500", params={"api_base": model_server.openai_base})
    result = await call_model(failing, "be brief", MESSAGES, settings=CallSettings(max_attempts=1))
    await _settle()
    assert result.status == "error"
    assert listener.failures, "a registered callback missed a failed call made by the server"


async def test_without_a_callback_a_failed_call_is_still_a_failed_trace(model_server: ModelServer) -> None:
    failing = ModelConfig(provider="openai", name="mock-fail-401", params={"api_base": model_server.openai_base})
    result = await call_model(failing, "be brief", MESSAGES, settings=CallSettings(max_attempts=1))
    assert result.status == "error" and result.error is not None


@pytest.mark.parametrize("name", CALLBACK_LISTS)
async def test_every_callback_list_counts_as_listening(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    litellm = load_litellm()
    assert isinstance(getattr(litellm, name), list), f"litellm.{name} is gone or changed type"
    monkeypatch.setattr(litellm, name, ["langfuse"])
    assert has_callbacks(litellm)
    with unobserved(litellm):  # listened to: the switch stays off
        from litellm._internal_context import is_internal_call

        assert is_internal_call.get() is False


async def test_the_switch_is_scoped() -> None:
    litellm = load_litellm()
    from litellm._internal_context import is_internal_call

    with unobserved(litellm):
        assert is_internal_call.get() is True
    assert is_internal_call.get() is False
