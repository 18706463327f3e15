"""The streaming server (FastAPI/Starlette): the only layer that imports them."""

from agentcast.server._auth import parse_api_keys
from agentcast.server._gc import tune_gc
from agentcast.server._transport import uvicorn_config
from agentcast.server.app import (
    AgentcastServer,
    InvokeRequest,
    ServedAgent,
    ServerConfig,
    create_app,
)

__all__ = (
    "AgentcastServer",
    "InvokeRequest",
    "ServedAgent",
    "ServerConfig",
    "create_app",
    "parse_api_keys",
    "tune_gc",
    "uvicorn_config",
)
