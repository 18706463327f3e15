# Seed 002's Python client code, verbatim from its "Streaming Response Usage Guide"
# ("Client Examples: Python with httpx" and "Parse SSE Events Safely"). See README.md here.
# HARNESS: `url` replaces the guide's placeholder 'https://your-agent.amazonaws.com/stream'.

import httpx
import json

async def stream_request(url):  # HARNESS: the guide's takes no argument
    async with httpx.AsyncClient() as client:
        async with client.stream(
            'POST',
            url,  # HARNESS: the guide's placeholder URL
            json={
                "prompt": "What is 2+2?",
                "session_id": "web-session",
                "stream": True
            },
            timeout=60.0
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith('event:'):
                    event_type = line.replace('event: ', '')
                elif line.startswith('data:'):
                    data = json.loads(line.replace('data: ', ''))
                    print(f"[{event_type}] {data}")


def parse_sse_event(event_str):
    """Safely parse SSE event."""
    try:
        lines = event_str.strip().split('\n')
        event_type = lines[0].replace('event: ', '')
        data = json.loads(lines[1].replace('data: ', ''))
        return {'type': event_type, 'data': data}
    except (IndexError, json.JSONDecodeError) as e:
        return {'type': 'error', 'data': {'error': f'Parse error: {e}'}}
