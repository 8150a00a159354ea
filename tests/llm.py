"""Helpers for tests of the LLM path: canned chat completions and a recorder for sleeps."""

from __future__ import annotations

import json
from typing import Any

import httpx

BASE_URL = "http://llm.test/v1"
API_KEY = "test-key-SECRET-0123456789abcdef"  # fake, and not shaped like a real key


def completion(
    content: str | dict[str, Any] | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    prompt_tokens: int = 120,
    completion_tokens: int = 30,
    cached_tokens: int = 0,
) -> dict[str, Any]:
    """A chat.completion body shaped like the real ones in tests/fixtures/openai/."""
    if isinstance(content, dict):
        content = json.dumps(content)
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1727346143,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        },
    }


def answer(tags: list[str], summary: str = "It does a thing and finds it works.") -> httpx.Response:
    """A 200 response carrying a valid structured answer."""
    return httpx.Response(200, json=completion({"tags": tags, "summary": summary}))


def error(status: int, message: str, code: str | None = None, **headers: str) -> httpx.Response:
    """An error response in OpenAI's shape."""
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
    return httpx.Response(status, json=body, headers=headers)


def sent_json(call: Any) -> dict[str, Any]:
    """The JSON body of a recorded respx call."""
    return json.loads(call.request.content)
