"""
A locust scenario for chatmirror (or any OpenAI-compatible endpoint): each user streams chat completions one
after another (wait_time 0, a closed loop like `chatmirror bench --concurrency`), reading the server-sent events
to the end. Locust times only up to the response headers by itself, so each request reports two entries of its
own through the request event:

  "chat TTFT"  seconds to the first chunk with content, as vLLM and chatmirror bench define TTFT
  "chat E2EL"  seconds to the end of the stream ([DONE]); its count per second is the request rate

Settings come from the environment (test/load/locust-vs-bench.sh sets them): LOCUST_MODEL, LOCUST_TOKEN,
LOCUST_CA_FILE (the CA to trust for https), LOCUST_MAX_TOKENS, LOCUST_PROMPT_FILE (one prompt per line, used in
turn across all users, as bench's --prompt-file does).
"""

import itertools
import json
import os
import time

from locust import HttpUser, constant, task

MODEL = os.environ["LOCUST_MODEL"]
TOKEN = os.environ.get("LOCUST_TOKEN", "")
CA_FILE = os.environ.get("LOCUST_CA_FILE") or True
MAX_TOKENS = int(os.environ.get("LOCUST_MAX_TOKENS", "32"))
with open(os.environ["LOCUST_PROMPT_FILE"], encoding="utf-8") as f:
    PROMPTS = [line.strip() for line in f if line.strip()]
NEXT_PROMPT = itertools.cycle(PROMPTS)


def sse_lines(response):
    """The stream's lines as they arrive. requests' iter_lines reads 512-byte blocks, so a short first event
    would wait for later ones and TTFT would be late; chunk_size=None yields each read as it comes."""
    buffer = b""
    for chunk in response.iter_content(chunk_size=None):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8").rstrip("\r")
    if buffer:
        yield buffer.decode("utf-8").rstrip("\r")


class ChatStreamer(HttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.client.verify = CA_FILE
        if TOKEN:
            self.client.headers["Authorization"] = f"Bearer {TOKEN}"

    @task
    def stream_chat(self):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": next(NEXT_PROMPT)}],
            "max_tokens": MAX_TOKENS,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started = time.perf_counter()
        ttft = None
        done = False
        error = None
        tokens = 0
        # Not counted by locust itself (its own timing would stop at the headers); the two entries below are.
        with self.client.post(
            "/v1/chat/completions", json=body, stream=True, catch_response=True, name="chat headers"
        ) as response:
            if response.status_code != 200:
                error = Exception(f"HTTP {response.status_code}: {response.text[:200]}")
            else:
                for line in sse_lines(response):
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        # Read on to the end of the body rather than break: a response left unread is not
                        # returned to the pool, and every request would pay a new TLS handshake.
                        done = True
                        continue
                    chunk = json.loads(data)
                    if "error" in chunk:
                        error = Exception(f"error event: {chunk['error'].get('message')}")
                        break
                    if ttft is None and any(
                        (c.get("delta") or {}).get("content") for c in chunk.get("choices") or []
                    ):
                        ttft = time.perf_counter() - started
                    usage = chunk.get("usage")
                    if usage:
                        tokens = usage.get("completion_tokens", 0)
                if error is None and not done:
                    error = Exception("stream ended without [DONE]")
            response.success()  # the headers entry is not a measurement; failures go on the entries below
        e2e = time.perf_counter() - started
        fire = self.environment.events.request.fire
        if ttft is not None and error is None:
            fire(request_type="POST", name="chat TTFT", response_time=ttft * 1000, response_length=0,
                 exception=None, context={})
        fire(request_type="POST", name="chat E2EL", response_time=e2e * 1000, response_length=tokens,
             exception=error, context={})
