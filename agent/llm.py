"""One structured chat call to any OpenAI-compatible endpoint: cached, retried, validated, repaired.

The ``openai`` SDK runs on our shared httpx client with ``max_retries=0`` (DESIGN 1 and 2), so
respx sees every request and tenacity alone decides what is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from agent.answers import AnswerInvalid
from agent.cache import MISS, AnswerCache, cache_key
from agent.config import Settings
from agent.errors import BackendError, PaperFailed
from agent.models import Usage
from agent.redact import redact
from agent.retry import RetryPolicy, call_with_retry

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletion

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
SAME_ERROR_LIMIT = 5
REPAIR = (
    "Your previous answer could not be used: {error}. Answer again with only the JSON object "
    "described above."
)

Messages = list[dict[str, str]]
# Renders the messages for a response format ("json_schema" or "json_object").
Render = Callable[[str], Messages]
# Validates raw answer text (final=True on the last attempt) into a JSON-able dict.
Validate = Callable[[str, bool], dict[str, Any]]


@dataclass
class Answer:
    """A validated answer, what it cost, and whether it came from the cache."""

    value: dict[str, Any]
    usage: Usage
    cached: bool


class LLM:
    """Asks for JSON that matches a schema; every request goes through ``call_with_retry``."""

    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, cache: AnswerCache | None = None
    ) -> None:
        self.settings = settings
        self.model = settings.model
        self.http = http
        self.cache = cache
        self.policy = RetryPolicy(max_attempts=settings.max_attempts)
        self.base_url = (settings.base_url or OPENAI_URL).rstrip("/")
        self.format = settings.response_format
        # Learned from the server's 400s during the run (reasoning models refuse some params).
        self._dropped: set[str] = set()
        self._token_param = "max_tokens"
        self._bad_request = ("", 0)  # the last 400's text and how many times in a row
        self._sdk: AsyncOpenAI | None = None

    def params(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Sampling parameters and response format: everything but model and messages."""
        params: dict[str, Any] = {}
        if "temperature" not in self._dropped:
            params["temperature"] = self.settings.temperature
        if self.settings.max_tokens:
            params[self._token_param] = self.settings.max_tokens
        if self.format == "json_schema":
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        else:
            params["response_format"] = {"type": "json_object"}
        return params

    def key(self, messages: Messages, name: str, schema: dict[str, Any]) -> str:
        """The cache key of a first request (never includes the API key)."""
        return cache_key(
            model=self.model, messages=messages, schema=schema, params=self.params(name, schema)
        )

    async def ask(
        self,
        render: Render,
        name: str,
        schema: dict[str, Any],
        validate: Validate,
        *,
        label: str = "",
    ) -> Answer:
        """A cached answer, or ask and re-ask with the validation error, boundedly."""
        for _ in range(3):  # json_schema, temperature, max_tokens: each adapted at most once
            try:
                return await self._ask(render, name, schema, validate, label)
            except _Reconfigured:
                continue  # ask again with the request the server accepts
        return await self._ask(render, name, schema, validate, label)

    async def _ask(
        self, render: Render, name: str, schema: dict[str, Any], validate: Validate, label: str
    ) -> Answer:
        messages = render(self.format)
        key = self.key(messages, name, schema)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not MISS:
                return Answer(hit, Usage(), cached=True)

        usage = Usage()
        conversation = messages
        attempts = self.settings.max_repairs + 1
        for attempt in range(1, attempts + 1):
            completion = await self._complete(conversation, name, schema, usage)
            raw = self._content(completion, usage)
            try:
                if completion.choices[0].finish_reason == "length":
                    raise AnswerInvalid("it was cut off at the length limit; keep it shorter")
                value = validate(raw, attempt == attempts)
            except AnswerInvalid as exc:
                log.info("%s: invalid answer (attempt %d): %s", label, attempt, exc)
                if attempt == attempts:
                    raise PaperFailed(
                        "invalid_answer",
                        f"no valid answer after {attempts} attempts: {exc}",
                        attempts=attempts,
                        last_raw=raw,
                        usage=usage,
                    ) from None
                # A fresh list each time: the original messages are never mutated.
                conversation = [
                    *messages,
                    {"role": "assistant", "content": raw},
                    {"role": "user", "content": REPAIR.format(error=exc)},
                ]
                continue
            if self.cache is not None:
                self.cache.set(key, value)  # only validated answers are cached
            return Answer(value, usage, cached=False)
        raise AssertionError("unreachable")  # pragma: no cover

    def _client(self) -> AsyncOpenAI:
        # Imported on first use: a fully cached run never pays for loading the SDK.
        if self._sdk is None:
            from openai import AsyncOpenAI

            self._sdk = AsyncOpenAI(
                # Local servers need no key, but the SDK insists on one.
                api_key=self.settings.api_key or "not-needed",
                base_url=self.base_url,
                http_client=self.http,
                max_retries=0,  # tenacity owns retries (DESIGN 2)
                timeout=self.settings.timeout,
            )
        return self._sdk

    def _content(self, completion: ChatCompletion, usage: Usage) -> str:
        """The answer text, or ``PaperFailed`` for a refusal or a content filter."""
        if not completion.choices:
            raise PaperFailed("bad_response", "the server returned no choices", usage=usage)
        choice = completion.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise PaperFailed("refusal", f"the model refused: {refusal}", usage=usage)
        if choice.finish_reason == "content_filter":
            raise PaperFailed(
                "content_filter", "the provider's content filter stopped the answer", usage=usage
            )
        return choice.message.content or ""

    async def _complete(
        self, messages: Messages, name: str, schema: dict[str, Any], usage: Usage
    ) -> ChatCompletion:
        """One chat completion with retries; maps HTTP failures to paper or run errors."""
        import openai
        from openai.types.chat import ChatCompletion

        client = self._client()
        params = self.params(name, schema)

        body = {"model": self.model, "messages": messages, **params}

        async def call() -> ChatCompletion:
            usage.requests += 1
            # The SDK's low-level post: same auth, errors and parsing as
            # chat.completions.create, without re-walking our already-plain JSON body.
            return await client.post("/chat/completions", cast_to=ChatCompletion, body=body)

        def count_retry(exc: BaseException, wait: float) -> None:
            usage.retries += 1

        try:
            completion = await call_with_retry(call, self.policy, count_retry)
        except openai.APIStatusError as exc:
            self._adapt_to(exc, params)
            raise self._status_error(exc, usage) from None
        except openai.APITimeoutError:
            raise PaperFailed(
                "timeout", "the request timed out after retries", usage=usage
            ) from None
        except openai.APIConnectionError as exc:
            cause = redact(str(exc.__cause__ or exc), [self.settings.api_key])
            raise BackendError(f"cannot reach the LLM server at {self.base_url}: {cause}") from None
        except (ValueError, openai.APIResponseValidationError) as exc:
            # A 200 whose body is cut off or not a completion (a proxy's error page, say).
            raise PaperFailed(
                "bad_response", f"the server's answer is not a chat completion: {exc}", usage=usage
            ) from None
        if not isinstance(completion, ChatCompletion):
            raise PaperFailed(
                "bad_response", "the server's answer is not a chat completion", usage=usage
            )
        self._bad_request = ("", 0)
        _record_usage(completion, usage)
        return completion

    def _adapt_to(self, exc: Any, sent: dict[str, Any]) -> None:
        """Raise ``_Reconfigured`` when a 400 names a request feature this server refuses."""
        if exc.status_code not in (400, 422):
            return
        text = _error_message(exc).lower()
        param = (getattr(exc, "param", None) or "").lower()
        if self.format == "json_schema" and ("response_format" in text or "json_schema" in text):
            log.warning("the server rejects json_schema output; falling back to json_object")
            self.format = "json_object"
            raise _Reconfigured
        if "temperature" in sent and (param == "temperature" or "temperature" in text):
            log.warning("model %s refuses a temperature; asking with its default", self.model)
            self._dropped.add("temperature")
            raise _Reconfigured
        if self._token_param == "max_tokens" and "max_completion_tokens" in text:
            log.warning("model %s wants max_completion_tokens instead of max_tokens", self.model)
            self._token_param = "max_completion_tokens"
            raise _Reconfigured

    def _status_error(self, exc: Any, usage: Usage) -> Exception:
        """A run-stopping ``BackendError`` or a per-paper ``PaperFailed`` for an HTTP error."""
        status = exc.status_code
        detail = redact(_error_message(exc), [self.settings.api_key])
        if status in (401, 403):
            return BackendError(f"the LLM server rejected the API key ({status}): {detail}")
        if status == 404:
            return BackendError(
                f"model '{self.model}' not found at {self.base_url} (404): {detail}"
            )
        if status == 429 and getattr(exc, "code", None) == "insufficient_quota":
            return BackendError(f"the account has no quota left (429): {detail}")
        if status == 429:
            kind = "rate_limited"
        elif status >= 500:
            kind = "server_error"
        else:
            kind = "http_error"
            # The same refusal paper after paper is the request, not the papers: stop paying.
            last, streak = self._bad_request
            streak = streak + 1 if detail == last else 1
            self._bad_request = (detail, streak)
            if streak >= SAME_ERROR_LIMIT:
                return BackendError(
                    f"the server refused {streak} requests in a row the same way "
                    f"(HTTP {status}): {detail}"
                )
        return PaperFailed(kind, f"HTTP {status}: {detail}", usage=usage)

    def close(self) -> None:
        """Close the answer cache (the shared HTTP client belongs to the caller)."""
        if self.cache is not None:
            self.cache.close()


class _Reconfigured(Exception):
    """The request was adapted to what the server accepts; the question is asked again."""


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return str(getattr(exc, "message", exc))


def _record_usage(completion: ChatCompletion, usage: Usage) -> None:
    counted = completion.usage
    if counted is None:
        return
    usage.prompt_tokens += counted.prompt_tokens or 0
    usage.completion_tokens += counted.completion_tokens or 0
    details = getattr(counted, "prompt_tokens_details", None)
    usage.cached_tokens += (getattr(details, "cached_tokens", None) or 0) if details else 0
