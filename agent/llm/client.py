"""One structured chat call to any OpenAI-compatible endpoint: cached, retried, validated, repaired.

The ``openai`` SDK runs on our shared httpx client with ``max_retries=0`` (DESIGN 1 and 2), so
respx sees every request and tenacity alone decides what is retried.

What a failure costs is decided here, in one place: a run-stopping ``BackendError`` (bad key,
unknown model, a server that cannot be reached at all) or a per-paper ``PaperFailed``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from agent.config import SLOW_TOKENS_PER_SECOND, Settings
from agent.errors import NOT_RUN, BackendError, Halt, PaperFailed
from agent.llm.answers import AnswerInvalid
from agent.llm.cache import MISS, AnswerCache, cache_key, server_id
from agent.llm.cost import Budget, OverBudget
from agent.llm.http import answer_timeout
from agent.llm.limits import Throttle, request_cost
from agent.llm.redact import redact
from agent.llm.retry import Deadline, RetryPolicy, call_with_retry
from agent.models import Usage

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
SAME_ERROR_LIMIT = 5
# Failure kinds that say the server or the network is in trouble, not the paper: the circuit
# breaker counts these.
SERVER_TROUBLE = frozenset(
    {"rate_limited", "server_error", "timeout", "connection_error", "bad_response"}
)
# Each thing a server may refuse is learned once: json_schema, temperature, max_tokens, size
# keywords. A request asked in one form more often than this was refused for something else.
MAX_REFORMS = 6
# JSON Schema keywords that bound an answer's size; some servers' strict modes refuse them.
SIZE_KEYWORDS = ("minItems", "maxItems", "maxLength", "minimum", "maximum")
REPAIR = (
    "Your previous answer could not be used: {error}. Answer again with only the JSON object "
    "described above."
)
CUT_OFF = "[answer cut off at the length limit]"
REPAIR_CUT_OFF = (
    "Your previous answer was cut off at the length limit. Answer again with only the JSON "
    "object described above, keeping it short."
)

Messages = list[dict[str, str]]
# Renders the messages for a response format ("json_schema" or "json_object").
Render = Callable[[str], Messages]
# Validates raw answer text (final=True on the last attempt) into a JSON-able dict.
Validate = Callable[[str, bool], dict[str, Any]]


class _Message(BaseModel):
    content: str | None = None
    refusal: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


def _count(value: Any) -> int | None:
    """A token count the server reported, or None when it is no count at all ("many", -1e8):
    an odd usage field costs its figure, never the answer or a --max-cost limit."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return None
    return int(value) if math.isfinite(value) else None


def _object(value: Any) -> Any:
    return value if isinstance(value, dict) else None


Count = Annotated[int | None, BeforeValidator(_count)]


class _Details(BaseModel):
    cached_tokens: Count = None


class _Counted(BaseModel):
    prompt_tokens: Count = None
    completion_tokens: Count = None
    prompt_tokens_details: Annotated[_Details | None, BeforeValidator(_object)] = None


class Completion(BaseModel):
    """The part of a chat completion we use; anything else a server adds is ignored."""

    model_config = ConfigDict(extra="ignore")

    choices: list[_Choice]
    usage: Annotated[_Counted | None, BeforeValidator(_object)] = None


@dataclass(frozen=True)
class Question:
    """What is asked, besides the messages: the answer's schema, its name, its expected size."""

    name: str
    schema: dict[str, Any]
    max_tokens: int  # the caller's estimate; the max_tokens setting overrides it


@dataclass
class Answer:
    """A validated answer, what it cost, and whether it came from the cache."""

    value: dict[str, Any]
    usage: Usage
    cached: bool


def without_size_bounds(schema: Any) -> Any:
    """``schema`` with the size keywords removed, for servers whose strict mode refuses them."""
    if isinstance(schema, dict):
        return {k: without_size_bounds(v) for k, v in schema.items() if k not in SIZE_KEYWORDS}
    if isinstance(schema, list):
        return [without_size_bounds(v) for v in schema]
    return schema


class LLM:
    """Asks for JSON that matches a schema; every request goes through ``call_with_retry``.

    The first request of a run goes alone: the others wait until the server has answered it,
    so a bad key or an unreachable server costs one request, not one per concurrency slot.
    """

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        cache: AnswerCache | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.settings = settings
        self.model = settings.model
        self.http = http
        self.cache = cache
        self.budget = budget  # the run's --max-cost, checked at every request launch
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts, attempt_deadline=settings.timeout * 2
        )
        # Every HTTP attempt waits its turn here: adaptive concurrency, pacing, --rpm/--tpm.
        self.throttle = Throttle(settings.concurrency, rpm=settings.rpm, tpm=settings.tpm)
        self.base_url = (settings.base_url or OPENAI_URL).rstrip("/")
        self.server = server_id(self.base_url)  # part of every cache key
        # What the server accepts, learned from its 400s during the run.
        self.format = settings.response_format
        self._dropped: set[str] = set()
        self._token_param = "max_tokens"
        self._bounded = True
        self._bad_request = ("", 0)  # the last 400's text and how many times in a row
        self._sdk: AsyncOpenAI | None = None
        self._proven = False  # the server has answered a request of this run
        self._probe = asyncio.Lock()
        self._stopped: BackendError | PaperFailed | None = None

    def params(self, question: Question) -> dict[str, Any]:
        """Sampling parameters and response format: everything but model and messages."""
        params: dict[str, Any] = {}
        if "temperature" not in self._dropped:
            params["temperature"] = self.settings.temperature
        limit = self.settings.max_tokens
        if limit is None and self._token_param == "max_tokens":
            # A reasoning model (it asks for max_completion_tokens) spends part of the limit
            # thinking: an answer-sized default would cut it off, so it gets none.
            limit = question.max_tokens
        if limit:
            params[self._token_param] = limit
        if self.format == "json_schema":
            schema = question.schema
            sent = schema if self._bounded else without_size_bounds(schema)
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": question.name, "schema": sent, "strict": True},
            }
        else:
            params["response_format"] = {"type": "json_object"}
        return params

    def body(self, messages: Messages, question: Question) -> dict[str, Any]:
        """The JSON body of a chat completion request: the same online and in a batch file."""
        return {"model": self.model, "messages": messages, **self.params(question)}

    def key(self, messages: Messages, question: Question) -> str:
        """The cache key of a first request (never includes the API key)."""
        params = self.params(question)
        return cache_key(
            server=self.server,
            model=self.model,
            messages=messages,
            schema=question.schema,
            params=params,
        )

    async def ask(
        self,
        render: Render,
        question: Question,
        validate: Validate,
        *,
        label: str = "",
        answered: Completion | None = None,
    ) -> Answer:
        """A cached answer, or ask and re-ask with the validation error, boundedly.

        ``answered`` is a completion already in hand (a batch output line): it is validated as
        the first attempt's answer, and only its repair is asked online.
        """
        # A request in flight when the server's refusal was learned is asked again too; the
        # requests every form costs are counted in one Usage.
        usage = Usage()
        for _ in range(MAX_REFORMS):
            try:
                return await self._ask(render, question, validate, label, usage, answered)
            except _Reconfigured:
                answered = None
                continue
        raise PaperFailed("http_error", "the server kept refusing the request's form", usage=usage)

    async def complete(self, render: Render, question: Question, usage: Usage) -> Completion:
        """One request in the form the server accepts, neither cached nor validated: for a
        caller that splits and checks the answer itself (several papers in one request)."""
        for _ in range(MAX_REFORMS):
            try:
                return await self._complete(render(self.format), question, usage)
            except _Reconfigured:
                continue
        raise PaperFailed("http_error", "the server kept refusing the request's form", usage=usage)

    async def _ask(
        self,
        render: Render,
        question: Question,
        validate: Validate,
        label: str,
        usage: Usage,
        answered: Completion | None,
    ) -> Answer:
        messages = render(self.format)
        key = self.key(messages, question)
        if self.cache is not None and answered is None:
            hit = self.cache.get(key)
            if hit is not MISS:
                # Checked again as a fresh answer would be: an entry from an older version,
                # another taxonomy or a hand edit is a miss, never a crash or an unknown tag.
                try:
                    return Answer(validate(json.dumps(hit), False), usage, cached=True)
                except AnswerInvalid as exc:
                    log.info("%s: cached answer no longer valid (%s); asking again", label, exc)

        conversation = messages
        attempts = self.settings.max_repairs + 1
        for attempt in range(1, attempts + 1):
            if attempt == 1 and answered is not None:
                completion = answered
                _record_usage(answered, usage)
            else:
                completion = await self._complete(conversation, question, usage)
            raw = self._content(completion, usage)
            cut_off = completion.choices[0].finish_reason == "length"
            try:
                if cut_off:
                    raise AnswerInvalid("it was cut off at the length limit; keep it shorter")
                value = validate(raw, attempt == attempts)
            except AnswerInvalid as exc:
                log.info("%s: invalid answer (attempt %d): %s", label, attempt, exc)
                if attempt == attempts:
                    raise PaperFailed(
                        "invalid_answer",
                        f"no valid answer after {attempts} attempts: {exc}",
                        last_raw=raw,
                        usage=usage,
                    ) from None
                # A fresh list each time: the original messages are never mutated. A cut-off
                # answer is not sent back: it may be most of the context already.
                said, repair = (CUT_OFF, REPAIR_CUT_OFF) if cut_off else (raw, REPAIR)
                conversation = [
                    *messages,
                    {"role": "assistant", "content": said},
                    {"role": "user", "content": repair.format(error=exc)},
                ]
                continue
            if self.cache is not None:
                self.cache.set(key, value)  # only validated answers are cached
            return Answer(value, usage, cached=False)
        raise AssertionError("unreachable")  # pragma: no cover

    def sdk(self) -> AsyncOpenAI:
        """The SDK client on our shared httpx client (made on first use)."""
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

    def _content(self, completion: Completion, usage: Usage) -> str:
        """The answer text, or ``PaperFailed`` for a refusal or a content filter."""
        choice = completion.choices[0]
        if choice.message.refusal:
            raise PaperFailed(
                "refusal", f"the model refused: {choice.message.refusal}", usage=usage
            )
        if choice.finish_reason == "content_filter":
            raise PaperFailed(
                "content_filter", "the provider's content filter stopped the answer", usage=usage
            )
        # A key the server echoes is redacted where the answer is decoded (parse_answer,
        # parse_highlights): only there is a key written as JSON escapes visible.
        return choice.message.content or ""

    async def _complete(self, messages: Messages, question: Question, usage: Usage) -> Completion:
        """One chat completion with retries; the first of the run goes alone."""
        if not self._proven:
            async with self._probe:
                if self._stopped is not None:
                    raise self._stopped  # the run is over: a paper waiting here sends nothing
                if not self._proven:  # still no answer from the server: this one goes alone
                    try:
                        return await self._send(messages, question, usage)
                    except BackendError as exc:
                        self._stopped = exc
                        raise
                    except PaperFailed as exc:
                        if exc.halt:  # the run stops: the papers waiting here are not run
                            reason = exc.message.removeprefix(NOT_RUN)
                            self._stopped = PaperFailed("skipped", NOT_RUN + reason, halt=exc.halt)
                        raise
        return await self._send(messages, question, usage)

    async def _send(self, messages: Messages, question: Question, usage: Usage) -> Completion:
        """Send one request (with retries) and map every failure to a paper or run error."""
        import openai

        client = self.sdk()
        body = self.body(messages, question)
        params = {k: v for k, v in body.items() if k not in ("model", "messages")}
        limit = params.get(self._token_param)
        tokens = limit if isinstance(limit, int) else None
        # In tokens: --tpm spends it, and a 429's x-ratelimit-remaining-tokens is read against it.
        cost = request_cost(messages, tokens)
        # A slow local server is still writing a long answer when a fixed deadline passes:
        # the wait grows with the answer's size, and so does the whole attempt's.
        deadline = answer_timeout(self.settings.timeout, tokens or question.max_tokens)
        policy = replace(self.policy, attempt_deadline=2 * (deadline.read or 0.0))

        launched = 0.0  # the budget's estimate of the attempt that got an answer

        async def call() -> httpx.Response:
            usage.requests += 1
            # The SDK's documented low-level post: same auth and error mapping as
            # chat.completions.create, without re-walking our already-plain JSON body.
            # The body is validated here, so a 200 that is not a completion fails only
            # its paper.
            return await client.post(
                "/chat/completions",
                cast_to=httpx.Response,
                body=body,
                options={"timeout": deadline},
            )

        async def gate(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
            nonlocal launched
            if self.budget is None:
                return await self.throttle.run(send, cost)
            # Every attempt, retries and repairs included, is checked against --max-cost
            # before its turn at the throttle: waiting for the budget to make room holds no
            # slot and runs no attempt's deadline.
            estimate = await self.budget.launch(body, question.max_tokens)
            sent = usage.requests
            try:
                response = await self.throttle.run(send, cost)
            except BaseException as exc:
                # Not sent, or an error status: not billed. A lost answer may have been.
                unbilled = usage.requests == sent or isinstance(exc, openai.APIStatusError)
                await self.budget.land(estimate, 0.0 if unbilled else None)
                raise
            launched = estimate
            return response

        def count_retry(exc: BaseException, wait: float) -> None:
            usage.retries += 1
            if not self._proven and usage.retries == 1:
                # The run waits on this one request: say why nothing is happening yet.
                log.warning(
                    "no answer from %s yet (%s); retrying for up to %.0f s",
                    self.base_url,
                    _reason(exc),
                    self.policy.max_total_wait,
                )

        try:
            response = await call_with_retry(call, policy, count_retry, gate)
        except OverBudget as exc:
            raise PaperFailed("skipped", f"{NOT_RUN}{exc}", usage=usage, halt=Halt.DRAIN) from None
        except openai.APIStatusError as exc:
            self._adapt_to(exc, params, question)
            raise self._status_error(exc, usage) from None
        except (openai.APITimeoutError, openai.APIConnectionError, Deadline) as exc:
            timeout = isinstance(exc, openai.APITimeoutError | Deadline)
            root = exc.__cause__ or exc
            # Some transport errors carry no text ("Server disconnected" does, a reset may not).
            cause = redact(str(root), [self.settings.api_key]) or type(root).__name__
            if not self._proven and not timeout:
                raise BackendError(
                    f"cannot reach the LLM server at {self.base_url}: {cause}"
                ) from None
            kind, what = ("timeout", "timed out") if timeout else ("connection_error", cause)
            message = f"{what} after {usage.requests} request(s)"
            if timeout:
                waited = round(deadline.read or 0.0, 1)
                message += (
                    f": no answer within {waited:g} s; a slow server needs a higher timeout "
                    f"in paper-agent.toml (now {self.settings.timeout:g} s, plus max_tokens "
                    f"at {SLOW_TOKENS_PER_SECOND:g} tokens/s)"
                )
            raise PaperFailed(
                kind,
                message,
                usage=usage,
                halt=None if self._proven else Halt.SERVER,
            ) from None
        self._proven = True
        self._bad_request = ("", 0)
        try:
            completion = Completion.model_validate_json(response.content)
            if not completion.choices:
                raise ValueError("no choices")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            if self.budget is not None:
                await self.budget.land(launched, None)
            problem = _first_problem(exc)
            raise PaperFailed(
                "bad_response",
                f"the server's answer is not a chat completion ({problem})",
                usage=usage,
            ) from None
        if self.budget is not None:
            await self.budget.land(launched, _billed(completion, self.budget))
        _record_usage(completion, usage)
        return completion

    def _adapt_to(self, exc: Any, sent: dict[str, Any], question: Question) -> None:
        """Raise ``_Reconfigured`` when the request should be asked again in another form.

        A 400 to a request sent before the server's last refusal was learned is asked again
        as the server now wants it, and never counts toward the same-error streak.
        """
        if exc.status_code not in (400, 422):
            return
        if sent != self.params(question):
            raise _Reconfigured
        text = _error_message(exc).lower()
        param = (getattr(exc, "param", None) or "").lower()
        if self._bounded and any(k.lower() in text for k in SIZE_KEYWORDS):
            log.warning("the server refuses size bounds in the schema; asking without them")
            self._bounded = False
            raise _Reconfigured
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
        self._proven = True  # it answered: the server is there (the breaker judges the rest)
        if status == 429 or status >= 500:
            kind = "rate_limited" if status == 429 else "server_error"
            message = f"HTTP {status} after {usage.requests} request(s): {detail}"
            return PaperFailed(kind, message, usage=usage)
        # The same refusal paper after paper is the request, not the papers: stop paying.
        last, streak = self._bad_request
        streak = streak + 1 if detail == last else 1
        self._bad_request = (detail, streak)
        if streak >= SAME_ERROR_LIMIT:
            return BackendError(
                f"the server refused {streak} requests in a row the same way "
                f"(HTTP {status}): {detail}"
            )
        return PaperFailed("http_error", f"HTTP {status}: {detail}", usage=usage)

    def close(self) -> None:
        """Close the answer cache (the shared HTTP client belongs to the caller)."""
        if self.cache is not None:
            self.cache.close()


class _Reconfigured(Exception):
    """The request was adapted to what the server accepts; the question is asked again."""


def _reason(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return f"HTTP {status}" if isinstance(status, int) else type(exc).__name__


def _first_problem(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return f"{where}: {first['msg']}"
    return str(exc)


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return str(getattr(exc, "message", exc))


def _billed(completion: Completion, budget: Budget) -> float | None:
    """What one completion cost, from its usage (None when the server did not say)."""
    counted = completion.usage
    if counted is None or counted.prompt_tokens is None:
        return None
    details = counted.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details else 0
    return budget.price.cost(counted.prompt_tokens, counted.completion_tokens or 0, cached)


def _record_usage(completion: Completion, usage: Usage) -> None:
    counted = completion.usage
    if counted is None:
        return
    usage.prompt_tokens += counted.prompt_tokens or 0
    usage.completion_tokens += counted.completion_tokens or 0
    details = counted.prompt_tokens_details
    usage.cached_tokens += (details.cached_tokens or 0) if details else 0
