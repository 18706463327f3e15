"""The agents layer: the everyday Python API over the runtime.

`Runner` runs any `Source`; `Agent` is the native loop; `wrap` turns a LangGraph graph, a
LangChain runnable or a chat model into a `Runner`; `load_agent` loads one from a
`module:attribute` spec; `stream_agent`/`invoke_agent` take a payload; `default_agent` is the
demo agent; `callbacks` holds the callback handlers. The server and the CLI sit above this
layer: the server serves the `Runner` it is given and never imports this package.
"""

from agentcast.agents._agent import Agent
from agentcast.agents._entry import default_agent, invoke_agent, stream_agent
from agentcast.agents._loader import load_agent
from agentcast.agents._runner import Runner, check_prompt
from agentcast.agents._wrap import is_graph, stream_callbacks, wrap

__all__ = [
    "Agent",
    "Runner",
    "check_prompt",
    "default_agent",
    "invoke_agent",
    "is_graph",
    "load_agent",
    "stream_agent",
    "stream_callbacks",
    "wrap",
]
