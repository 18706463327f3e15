"""Models: `"provider:model"` strings -> LangChain chat models, and the embedded offline model.

Provider packages are optional extras, imported only when a model string names them, with an
install hint when missing.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from langchain_core.language_models import BaseChatModel

from agentcast.errors import ConfigError, MissingCredentials, MissingDependency
from agentcast.models.offline import OfflineChatModel

__all__ = ("PROVIDERS", "OfflineChatModel", "describe", "resolve")

PROVIDERS: dict[str, tuple[str, str, str, str | None]] = {
    "openai": ("langchain_openai", "ChatOpenAI", "openai", "OPENAI_API_KEY"),
    "anthropic": ("langchain_anthropic", "ChatAnthropic", "anthropic", "ANTHROPIC_API_KEY"),
    "bedrock": ("langchain_aws", "ChatBedrockConverse", "bedrock", None),
    "ollama": ("langchain_ollama", "ChatOllama", "ollama", None),
}
"""provider -> (module, class, extra to install, API key variable)."""

_OFFLINE_FLAGS = {"reasoning": "reasoning", "blocks": "content_blocks"}


def resolve(model: str | BaseChatModel = "offline", **options: Any) -> BaseChatModel:
    """Return the chat model a model string names, or `model` itself if it is one already.

    Strings: `offline` (the embedded demo model; `offline:reasoning`, `offline:blocks` and
    `offline:reasoning,blocks` turn on its reasoning stream and content-block chunks),
    `openai:<model>` (any OpenAI-compatible server with `base_url=`), `anthropic:<model>`,
    `bedrock:<model id>`, `ollama:<model>`. `options` go to the model's constructor.

    Raises:
        ConfigError: the string names no known provider or no model.
        MissingDependency: the provider's package is not installed (the message names the extra).
        MissingCredentials: the provider's API key is not set.
    """
    if isinstance(model, BaseChatModel):
        return model
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(
            f"a model must be a 'provider:model' string or a chat model, got {model!r}"
        )
    spec = model.strip()
    provider, _, name = spec.partition(":")
    if provider == "offline":
        flags = {f.strip() for f in name.split(",") if f.strip()}
        unknown = flags - set(_OFFLINE_FLAGS)
        if unknown:
            raise ConfigError(
                f"unknown offline model option(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(_OFFLINE_FLAGS)}"
            )
        return OfflineChatModel(
            reasoning="reasoning" in flags, content_blocks="blocks" in flags, **options
        )
    if provider not in PROVIDERS:
        known = ", ".join(["offline", *PROVIDERS])
        raise ConfigError(f"unknown model provider {provider!r} in {spec!r}; use one of: {known}")
    if not name:
        raise ConfigError(f"{spec!r} names no model; write it as '{provider}:<model name>'")
    module_name, class_name, extra, key_var = PROVIDERS[provider]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise MissingDependency(
            f"the {provider} provider needs the {module_name.replace('_', '-')} package: "
            f"pip install 'agentcast[{extra}]'"
        ) from None
    if (
        key_var
        and not os.environ.get(key_var)
        and "api_key" not in options
        and "base_url" not in options
    ):
        raise MissingCredentials(f"{spec} needs an API key: set {key_var}")
    if provider in ("openai", "anthropic", "bedrock") and not {"max_retries", "config"} & set(
        options
    ):
        # Retries happen once, in agentcast, and only before the first token (RetryPolicy):
        # an SDK's own loop would retry out of sight and multiply the attempts.
        options["max_retries"] = 0
    if (
        provider == "openai"
        and "base_url" in options
        and "api_key" not in options
        and not os.environ.get(key_var or "")
    ):
        options["api_key"] = "not-needed"  # local OpenAI-compatible servers ignore it
    try:
        return getattr(module, class_name)(model=name, **options)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - provider constructors raise anything
        raise ConfigError(f"cannot create the {provider} model {name!r}: {exc}") from exc


def describe(model: BaseChatModel) -> str:
    """Return a short label for a model, marking the offline model as a demo."""
    if isinstance(model, OfflineChatModel):
        return "offline demo model (no API key, no network)"
    name = getattr(model, "model_name", None) or getattr(model, "model", None) or ""
    return f"{type(model).__name__} {name}".strip()
