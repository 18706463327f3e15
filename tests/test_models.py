"""Model strings -> chat models, with clear errors; and the embedded offline model itself."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
import types

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool

from agentcast.errors import ConfigError, MissingCredentials, MissingDependency
from agentcast.models import PROVIDERS, OfflineChatModel, describe, resolve
from agentcast.models.offline import DEFAULT_TOKEN_DELAY
from agentcast.testing import ScriptedChatModel

pytestmark = pytest.mark.anyio

PROVIDER_MODULES = {
    "openai": "langchain_openai",
    "anthropic": "langchain_anthropic",
    "bedrock": "langchain_aws",
    "ollama": "langchain_ollama",
}
VALID = ("offline", "openai", "anthropic", "bedrock", "ollama")


# -- resolve: the offline model --------------------------------------------------------------------


def test_resolve_offline_is_the_offline_model():
    model = resolve("offline")
    assert type(model) is OfflineChatModel
    assert (model.reasoning, model.content_blocks) == (False, False)
    assert type(resolve()) is OfflineChatModel, "offline is the default"
    assert type(resolve("  offline  ")) is OfflineChatModel


@pytest.mark.parametrize(
    ("spec", "reasoning", "blocks"),
    [
        ("offline:reasoning", True, False),
        ("offline:blocks", False, True),
        ("offline:reasoning,blocks", True, True),
        ("offline:blocks, reasoning", True, True),
        ("offline:", False, False),
    ],
)
def test_resolve_offline_flags(spec, reasoning, blocks):
    model = resolve(spec)
    assert isinstance(model, OfflineChatModel)
    assert (model.reasoning, model.content_blocks) == (reasoning, blocks)


def test_resolve_offline_passes_options_to_the_constructor():
    model = resolve("offline", token_delay=0.25, args_chunk_size=9)
    assert (model.token_delay, model.args_chunk_size) == (0.25, 9)


def test_resolve_offline_unknown_flag_is_config_error():
    with pytest.raises(ConfigError, match="unknown offline model option") as info:
        resolve("offline:turbo")
    assert "turbo" in str(info.value)
    assert "reasoning" in str(info.value) and "blocks" in str(info.value)


def test_resolve_passes_a_chat_model_instance_through():
    model = ScriptedChatModel(turns=[[AIMessageChunk(content="hi")]])
    assert resolve(model) is model
    offline = OfflineChatModel(token_delay=0)
    assert resolve(offline) is offline


# -- resolve: bad strings --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["", "   ", "\n"])
def test_resolve_empty_string_is_config_error(spec):
    with pytest.raises(ConfigError, match="'provider:model' string") as info:
        resolve(spec)
    assert type(info.value) is ConfigError


@pytest.mark.parametrize("value", [None, 42, ["offline"], b"offline", object()])
def test_resolve_non_string_is_config_error(value):
    with pytest.raises(ConfigError, match="a model must be a 'provider:model' string") as info:
        resolve(value)  # type: ignore[arg-type]
    assert type(info.value) is ConfigError


@pytest.mark.parametrize(
    ("spec", "provider"),
    [("gpt4", "gpt4"), ("foo:bar", "foo"), ("OpenAI:gpt-4o", "OpenAI"), (":gpt-4o", "")],
)
def test_resolve_unknown_provider_names_the_valid_ones(spec, provider):
    with pytest.raises(ConfigError) as info:
        resolve(spec)
    message = str(info.value)
    assert type(info.value) is ConfigError
    assert f"unknown model provider {provider!r}" in message
    assert repr(spec) in message
    assert "use one of: " + ", ".join(VALID) in message


@pytest.mark.parametrize("provider", list(PROVIDER_MODULES))
def test_resolve_provider_without_model_is_config_error(provider):
    with pytest.raises(ConfigError) as info:
        resolve(f"{provider}:")
    assert type(info.value) is ConfigError
    assert f"'{provider}:' names no model" in str(info.value)
    assert f"'{provider}:<model name>'" in str(info.value)


# -- resolve: providers whose package is missing ---------------------------------------------------


def test_provider_table():
    assert {p: row[0] for p, row in PROVIDERS.items()} == PROVIDER_MODULES


@pytest.mark.parametrize("provider", list(PROVIDER_MODULES))
def test_missing_provider_package_is_missing_dependency_with_install_hint(provider, monkeypatch):
    module = PROVIDER_MODULES[provider]
    if importlib.util.find_spec(module) is not None:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    with pytest.raises(MissingDependency) as info:
        resolve(f"{provider}:some-model")
    message = str(info.value)
    assert f"pip install 'agentcast[{provider}]'" in message
    assert module.replace("_", "-") in message
    assert info.value.code == "missing_dependency"
    assert info.value.__cause__ is None, "the ImportError chain is noise for the user"


# -- resolve: providers, with a stand-in module for the import only -------------------------------


def _stub_provider(monkeypatch, module_name: str, class_name: str, *, fail: bool = False):
    """Install a fake provider module; return the list that records constructor kwargs."""
    calls: list[dict] = []

    class FakeChat:
        def __init__(self, **kwargs):
            if fail:
                raise ValueError("bad temperature")
            calls.append(kwargs)
            self.kwargs = kwargs

    fake = types.ModuleType(module_name)
    setattr(fake, class_name, FakeChat)
    monkeypatch.setitem(sys.modules, module_name, fake)
    return calls, FakeChat


@pytest.mark.parametrize(
    ("provider", "module", "cls", "key"),
    [
        ("openai", "langchain_openai", "ChatOpenAI", "OPENAI_API_KEY"),
        ("anthropic", "langchain_anthropic", "ChatAnthropic", "ANTHROPIC_API_KEY"),
    ],
)
def test_missing_api_key_is_missing_credentials(monkeypatch, provider, module, cls, key):
    calls, _ = _stub_provider(monkeypatch, module, cls)
    monkeypatch.delenv(key, raising=False)
    with pytest.raises(MissingCredentials) as info:
        resolve(f"{provider}:some-model")
    assert key in str(info.value)
    assert f"{provider}:some-model" in str(info.value)
    assert calls == [], "no model may be built without credentials"


def test_api_key_from_env_builds_the_model(monkeypatch):
    calls, fake_cls = _stub_provider(monkeypatch, "langchain_openai", "ChatOpenAI")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    model = resolve("openai:gpt-4o-mini", temperature=0.1)
    assert isinstance(model, fake_cls)
    assert calls == [{"model": "gpt-4o-mini", "temperature": 0.1, "max_retries": 0}]


def test_explicit_api_key_needs_no_env(monkeypatch):
    calls, _ = _stub_provider(monkeypatch, "langchain_openai", "ChatOpenAI")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    resolve("openai:gpt-4o-mini", api_key="sk-explicit")
    assert calls == [{"model": "gpt-4o-mini", "api_key": "sk-explicit", "max_retries": 0}]


def test_base_url_needs_no_key_and_gets_a_placeholder(monkeypatch):
    calls, _ = _stub_provider(monkeypatch, "langchain_openai", "ChatOpenAI")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    resolve("openai:llama3.1:8b", base_url="http://localhost:8000/v1")
    assert calls == [
        {
            "model": "llama3.1:8b",
            "base_url": "http://localhost:8000/v1",
            "max_retries": 0,
            "api_key": "not-needed",
        }
    ]


def test_base_url_with_env_key_keeps_the_env_key(monkeypatch):
    calls, _ = _stub_provider(monkeypatch, "langchain_openai", "ChatOpenAI")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    resolve("openai:m", base_url="http://localhost:8000/v1")
    assert calls == [{"model": "m", "base_url": "http://localhost:8000/v1", "max_retries": 0}]


@pytest.mark.parametrize(
    ("provider", "module", "cls"),
    [
        ("bedrock", "langchain_aws", "ChatBedrockConverse"),
        ("ollama", "langchain_ollama", "ChatOllama"),
    ],
)
def test_providers_without_api_key_variable(monkeypatch, provider, module, cls):
    calls, _ = _stub_provider(monkeypatch, module, cls)
    resolve(f"{provider}:anthropic.claude:v1:0")
    # SDK retries are off where the SDK has its own loop: agentcast retries, before output only
    expected = {"model": "anthropic.claude:v1:0"}
    if provider == "bedrock":
        expected["max_retries"] = 0
    assert calls == [expected]


def test_sdk_retries_can_be_chosen_by_the_caller(monkeypatch):
    calls, _ = _stub_provider(monkeypatch, "langchain_openai", "ChatOpenAI")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    resolve("openai:m", max_retries=5)
    assert calls == [{"model": "m", "max_retries": 5}]


def test_constructor_failure_is_config_error(monkeypatch):
    _stub_provider(monkeypatch, "langchain_openai", "ChatOpenAI", fail=True)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(ConfigError) as info:
        resolve("openai:gpt-4o-mini", temperature=-5)
    assert type(info.value) is ConfigError
    assert "cannot create the openai model 'gpt-4o-mini'" in str(info.value)
    assert "bad temperature" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


# -- describe --------------------------------------------------------------------------------------


def test_describe_labels_the_offline_model_as_a_demo():
    for spec in ("offline", "offline:reasoning,blocks"):
        label = describe(resolve(spec))
        assert "demo" in label
        assert "offline" in label


def test_describe_other_models_by_class_and_name():
    label = describe(ScriptedChatModel(turns=[[AIMessageChunk(content="x")]]))
    assert label == "ScriptedChatModel"
    assert "demo" not in label


# -- the offline model is a real BaseChatModel -----------------------------------------------------


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def offline(**options) -> OfflineChatModel:
    return OfflineChatModel(token_delay=0, **options)


def test_offline_is_a_base_chat_model():
    assert isinstance(offline(), BaseChatModel)


async def test_offline_ainvoke_and_invoke():
    model = offline()
    result = await model.ainvoke("My name is Alice")
    assert isinstance(result, AIMessage)
    assert "Alice" in result.text
    assert result.tool_calls == []
    assert result.usage_metadata["output_tokens"] > 0
    assert model.invoke("My name is Alice").text == result.text


def _signature(chunks):
    return [
        (c.content, c.additional_kwargs, c.tool_call_chunks, c.response_metadata, c.usage_metadata)
        for c in chunks
    ]


async def test_offline_astream_and_stream_agree_and_join_to_invoke():
    model = offline()
    prompt = [HumanMessage("What items are located where the cat is hiding?")]
    async_chunks = [c async for c in model.astream(prompt)]
    sync_chunks = list(model.stream(prompt))
    assert len(async_chunks) > 3, "streams token by token"
    assert all(isinstance(c, AIMessageChunk) for c in async_chunks)
    assert _signature(async_chunks) == _signature(sync_chunks)
    joined = "".join(c.text for c in async_chunks)
    assert joined == model.invoke(prompt).text


async def test_offline_is_deterministic():
    prompt = "What is (3 + 4) * 5?"
    first = [c async for c in offline().bind_tools([add, multiply]).astream(prompt)]
    second = [c async for c in offline().bind_tools([add, multiply]).astream(prompt)]
    assert _signature(first) == _signature(second)
    for flags in ({"reasoning": True}, {"content_blocks": True}):
        one = [c async for c in offline(**flags).astream(prompt)]
        two = [c async for c in offline(**flags).astream(prompt)]
        assert _signature(one) == _signature(two)


async def test_offline_bind_tools_calls_the_calculator():
    bound = offline().bind_tools([add, multiply])
    result = await bound.ainvoke("What is 25 * 4?")
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [("multiply", {"a": 25, "b": 4})]
    assert result.response_metadata["finish_reason"] == "tool_calls"
    # Without the tools bound, the same question gets no tool call.
    assert (await offline().ainvoke("What is 25 * 4?")).tool_calls == []


async def test_offline_with_config_works_and_keeps_output():
    model = offline()
    configured = model.with_config(tags=["t1"], run_name="demo", metadata={"k": "v"})
    result = await configured.ainvoke("My name is Bob")
    assert result.text == (await model.ainvoke("My name is Bob")).text
    assert [c.text async for c in configured.astream("My name is Bob")] == [
        c.text async for c in model.astream("My name is Bob")
    ]


async def test_offline_reasoning_and_blocks_shapes():
    prompt = "My name is Alice"
    plain = [c async for c in offline(reasoning=True).astream(prompt)]
    assert any(c.additional_kwargs.get("reasoning_content") for c in plain)
    blocks = [c async for c in offline(reasoning=True, content_blocks=True).astream(prompt)]
    types_seen = {b["type"] for c in blocks if isinstance(c.content, list) for b in c.content}
    assert {"thinking", "text"} <= types_seen
    assert any(b.get("signature") for c in blocks if isinstance(c.content, list) for b in c.content)


# -- pacing ----------------------------------------------------------------------------------------


def test_token_delay_default_comes_from_env(monkeypatch):
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "0.125")
    assert OfflineChatModel().token_delay == 0.125
    assert resolve("offline").token_delay == 0.125
    assert OfflineChatModel(token_delay=0.5).token_delay == 0.5, "explicit beats env"
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "-3")
    assert OfflineChatModel().token_delay == 0.0
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "not-a-number")
    assert OfflineChatModel().token_delay == DEFAULT_TOKEN_DELAY
    monkeypatch.delenv("AGENTCAST_OFFLINE_DELAY")
    assert OfflineChatModel().token_delay == DEFAULT_TOKEN_DELAY == 0.02


def test_sync_stream_waits_token_delay_between_chunks(monkeypatch):
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "0.75")
    waits: list[float] = []
    with monkeypatch.context() as patch:
        patch.setattr(time, "sleep", waits.append)
        chunks = list(OfflineChatModel().stream("My name is Alice"))
    produced = [c for c in chunks if c.chunk_position != "last"]  # LangChain adds a last marker
    assert len(produced) > 3
    assert waits == [0.75] * (len(produced) - 1), "a pause between chunks, none before the first"


async def test_async_stream_waits_token_delay_between_chunks(monkeypatch):
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay, *args, **kwargs):
        waits.append(delay)
        await real_sleep(0)

    model = OfflineChatModel(token_delay=0.3)
    with monkeypatch.context() as patch:
        patch.setattr(asyncio, "sleep", fake_sleep)
        chunks = [c async for c in model.astream("My name is Alice")]
    produced = [c for c in chunks if c.chunk_position != "last"]  # LangChain adds a last marker
    assert len(produced) > 3
    assert waits == [0.3] * (len(produced) - 1)


async def test_zero_delay_never_waits(monkeypatch):
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay, *args, **kwargs):
        waits.append(delay)
        await real_sleep(0)

    model = OfflineChatModel()  # conftest sets AGENTCAST_OFFLINE_DELAY=0
    assert model.token_delay == 0
    with monkeypatch.context() as patch:
        patch.setattr(asyncio, "sleep", fake_sleep)
        chunks = [c async for c in model.astream("My name is Alice")]
    assert len(chunks) > 1
    assert waits == []
