"""Seed 002's httpx example: stream an agent's answer from `POST /invoke`.

Kept as seed 002's clients read the stream: a frame's first line is `event: <type>` and its
second `data: <json>`, and that JSON is the event's own data (`data["token"]` on `llm_token`,
`data["type"] == "ai"` and `data["content"]` on `agent_step`, `data["output"]` on `agent_end`).
tests/test_seed002.py runs it, unchanged, against agentcast's server.

    python httpx_client.py http://127.0.0.1:8000 "What is 25 * 4?"
"""

import json
import sys

import httpx


def parse_sse_event(raw):
    lines = raw.strip().split("\n")
    event_type = lines[0].replace("event: ", "", 1)
    data = json.loads(lines[1].replace("data: ", "", 1))
    return {"type": event_type, "data": data}


def stream_invoke(base_url, prompt, session_id=None):
    body = {"prompt": prompt, "session_id": session_id, "stream": True}
    with httpx.stream("POST", f"{base_url}/invoke", json=body, timeout=None) as response:
        response.raise_for_status()
        buffer = ""
        for chunk in response.iter_text():
            buffer += chunk
            while "\n\n" in buffer:
                raw, buffer = buffer.split("\n\n", 1)
                if not raw.startswith("event:"):
                    continue  # heartbeat comments
                yield parse_sse_event(raw)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    base_url, prompt = argv[0], argv[1]
    session_id = argv[2] if len(argv) > 2 else None
    for event in stream_invoke(base_url, prompt, session_id):
        if event["type"] == "llm_token":
            print(event["data"]["token"], end="", flush=True)
        elif event["type"] == "agent_step" and event["data"]["type"] == "ai":
            if event["data"]["content"]:
                print()
                print(f"[ai] {event['data']['content']}")
        elif event["type"] == "tool_end":
            print(f"[tool] {event['data']['name']} -> {event['data']['output']}")
        elif event["type"] == "agent_end":
            print(f"[output] {event['data']['output']}")
            print(f"[metrics] {json.dumps(event['data']['metrics'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
