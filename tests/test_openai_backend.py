"""The LLM backend over respx: request shape, retries, validation and repair, fatal errors."""

from __future__ import annotations

import httpx
import pytest
import respx

from agent.errors import BackendError, PaperFailed
from agent.models import Paper
from agent.taxonomy import load_taxonomy
from tests.llm import API_KEY, BASE_URL, answer, completion, error, sent_json

PAPER = Paper(id="2401.00001", title="Tiny transformers", abstract="We train a small model.")


@pytest.fixture
async def mocked_llm():
    """A strict respx router for the LLM endpoint: any unmocked request fails."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


async def test_request_carries_strict_schema_with_taxonomy_enum(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    result = await make_backend().annotate(PAPER)
    assert result.tags == ["LLMs"]
    body = sent_json(route.calls.last)
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["properties"]["tags"]["items"]["enum"] == load_taxonomy().names
    assert schema["additionalProperties"] is False
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][-1]["content"].endswith("</paper>")
    assert "Tiny transformers" in body["messages"][-1]["content"]
    assert route.calls.last.request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_usage_is_recorded(mocked_llm, make_backend):
    body = completion({"tags": ["LLMs"], "summary": "Short."}, cached_tokens=64)
    mocked_llm.post("/chat/completions").respond(200, json=body)
    result = await make_backend().annotate(PAPER)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (120, 30)
    assert result.usage.cached_tokens == 64
    assert result.usage.requests == 1


async def test_429_with_retry_after_waits_as_told(mocked_llm, make_backend, sleeps):
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=[
            error(429, "Rate limit reached", "rate_limit_exceeded", **{"retry-after": "2"}),
            answer(["LLMs"]),
        ]
    )
    result = await make_backend().annotate(PAPER)
    assert route.call_count == 2
    assert sleeps == [2.0]
    assert result.usage.retries == 1


async def test_retry_after_ms_wins(mocked_llm, make_backend, sleeps):
    mocked_llm.post("/chat/completions").mock(
        side_effect=[
            error(429, "slow down", None, **{"retry-after-ms": "250", "retry-after": "9"}),
            answer(["LLMs"]),
        ]
    )
    await make_backend().annotate(PAPER)
    assert sleeps == [0.25]


async def test_repeated_500s_spend_retries_then_fail_the_paper(mocked_llm, make_backend, sleeps):
    route = mocked_llm.post("/chat/completions").mock(return_value=error(500, "server error"))
    with pytest.raises(PaperFailed) as failed:
        await make_backend(max_attempts=4).annotate(PAPER)
    assert failed.value.kind == "server_error"
    assert route.call_count == 4
    assert len(sleeps) == 3
    assert all(s > 0 for s in sleeps)


async def test_401_is_fatal_after_one_request(mocked_llm, make_backend, sleeps):
    route = mocked_llm.post("/chat/completions").mock(
        return_value=error(401, f"Incorrect API key provided: {API_KEY}.", "invalid_api_key")
    )
    with pytest.raises(BackendError) as fatal:
        await make_backend().annotate(PAPER)
    assert route.call_count == 1
    assert sleeps == []
    assert API_KEY not in str(fatal.value)
    assert "401" in str(fatal.value)


async def test_insufficient_quota_is_not_retried(mocked_llm, make_backend, sleeps):
    route = mocked_llm.post("/chat/completions").mock(
        return_value=error(429, "You exceeded your current quota", "insufficient_quota")
    )
    with pytest.raises(BackendError, match="quota"):
        await make_backend().annotate(PAPER)
    assert route.call_count == 1


async def test_unknown_model_is_fatal(mocked_llm, make_backend):
    mocked_llm.post("/chat/completions").mock(
        return_value=error(404, "The model `nope` does not exist", "model_not_found")
    )
    with pytest.raises(BackendError, match="model 'nope' not found"):
        await make_backend(model="nope").annotate(PAPER)


async def test_unreachable_server_is_fatal(mocked_llm, make_backend, sleeps):
    route = mocked_llm.post("/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(BackendError, match="cannot reach"):
        await make_backend(max_attempts=3).annotate(PAPER)
    assert route.call_count == 3


async def test_invalid_json_is_repaired_without_mutating_messages(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=[
            httpx.Response(200, json=completion('{"tags": ["LLMs"], "summ')),
            answer(["LLMs"]),
        ]
    )
    result = await make_backend().annotate(PAPER)
    assert result.tags == ["LLMs"]
    first, second = (sent_json(call) for call in route.calls)
    assert len(first["messages"]) == 2
    assert second["messages"][:2] == first["messages"]
    assert second["messages"][2] == {"role": "assistant", "content": '{"tags": ["LLMs"], "summ'}
    assert "not valid JSON" in second["messages"][3]["content"]
    assert result.usage.requests == 2


async def test_tags_match_case_insensitively_and_through_aliases(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["llm", "rag", "LLMs"]))
    result = await make_backend().annotate(PAPER)
    assert result.tags == ["LLMs", "Retrieval & RAG"]
    assert route.call_count == 1


async def test_unknown_tag_is_repaired(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=[answer(["Quantum Cooking"]), answer(["Efficiency"])]
    )
    result = await make_backend().annotate(PAPER)
    assert result.tags == ["Efficiency"]
    assert "unknown tag(s) 'Quantum Cooking'" in sent_json(route.calls[1])["messages"][3]["content"]


async def test_unknown_tag_dropped_on_last_attempt_when_a_known_tag_remains(
    mocked_llm, make_backend
):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["Agents", "Cooking"]))
    result = await make_backend(max_repairs=1).annotate(PAPER)
    assert route.call_count == 2
    assert result.tags == ["Agents"]


async def test_only_unknown_tags_fail_the_paper(mocked_llm, make_backend):
    mocked_llm.post("/chat/completions").mock(return_value=answer(["Cooking"]))
    with pytest.raises(PaperFailed) as failed:
        await make_backend(max_repairs=1).annotate(PAPER)
    assert failed.value.kind == "invalid_answer"
    assert failed.value.usage.requests == 2
    assert "Cooking" in failed.value.last_raw


async def test_too_many_tags_are_cut_to_max_tags(mocked_llm, make_backend):
    mocked_llm.post("/chat/completions").mock(
        return_value=answer(["LLMs", "Agents", "Code", "Reasoning"])
    )
    result = await make_backend(max_tags=2).annotate(PAPER)
    assert result.tags == ["LLMs", "Agents"]


async def test_finish_reason_length_is_re_asked(mocked_llm, make_backend):
    cut = httpx.Response(200, json=completion('{"', finish_reason="length"))
    route = mocked_llm.post("/chat/completions").mock(side_effect=[cut, answer(["LLMs"])])
    result = await make_backend().annotate(PAPER)
    assert result.tags == ["LLMs"]
    assert "length limit" in sent_json(route.calls[1])["messages"][3]["content"]


async def test_finish_reason_length_every_time_fails_the_paper(mocked_llm, make_backend):
    cut = completion('{"tags": ["LLMs"], "summary": "ok"}', finish_reason="length")
    mocked_llm.post("/chat/completions").respond(200, json=cut)
    with pytest.raises(PaperFailed, match="length limit"):
        await make_backend(max_repairs=1).annotate(PAPER)


async def test_refusal_fails_the_paper(mocked_llm, make_backend, fixtures):
    body = (fixtures / "openai" / "chat_completion_refusal.json").read_text()
    route = mocked_llm.post("/chat/completions").respond(
        200, text=body, headers={"content-type": "application/json"}
    )
    with pytest.raises(PaperFailed) as failed:
        await make_backend().annotate(PAPER)
    assert failed.value.kind == "refusal"
    assert "can't assist" in failed.value.message
    assert route.call_count == 1


async def test_content_filter_fails_the_paper(mocked_llm, make_backend):
    body = completion(None, finish_reason="content_filter")
    mocked_llm.post("/chat/completions").respond(200, json=body)
    with pytest.raises(PaperFailed) as failed:
        await make_backend().annotate(PAPER)
    assert failed.value.kind == "content_filter"


async def test_empty_summary_is_re_asked(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=[answer(["LLMs"], summary="  "), answer(["LLMs"])]
    )
    await make_backend().annotate(PAPER)
    assert "summary is empty" in sent_json(route.calls[1])["messages"][3]["content"]


async def test_server_without_json_schema_falls_back_to_json_object(mocked_llm, make_backend):
    rejected = error(400, "response_format json_schema is not supported by this server")
    route = mocked_llm.post("/chat/completions").mock(side_effect=[rejected, answer(["Code"])])
    result = await make_backend().annotate(PAPER)
    assert result.tags == ["Code"]
    retry_body = sent_json(route.calls[1])
    assert retry_body["response_format"] == {"type": "json_object"}
    assert '"enum"' in retry_body["messages"][0]["content"]


async def test_other_400_fails_only_the_paper(mocked_llm, make_backend):
    """Its "minimum" is English, not a schema keyword named: nothing is learned or re-asked."""
    route = mocked_llm.post("/chat/completions").mock(
        return_value=error(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
        )
    )
    with pytest.raises(PaperFailed) as failed:
        await make_backend().annotate(PAPER)
    assert failed.value.kind == "http_error"
    assert route.call_count == 1


async def test_cache_hit_makes_no_request(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    first = await make_backend(cache=True).annotate(PAPER)
    second = await make_backend(cache=True).annotate(PAPER)
    assert route.call_count == 1
    assert (second.tags, second.summary, second.cached) == (first.tags, first.summary, True)
    assert second.usage.requests == 0


async def test_cache_misses_when_model_changes(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    await make_backend(cache=True).annotate(PAPER)
    await make_backend(cache=True, model="gpt-4.1-mini").annotate(PAPER)
    assert route.call_count == 2


async def test_cache_misses_when_template_changes(mocked_llm, make_backend, tmp_path):
    from agent.llm.prompts import default_prompts_dir

    custom = tmp_path / "prompts"
    custom.mkdir()
    for name in ("system.j2", "user.j2"):
        (custom / name).write_text((default_prompts_dir() / name).read_text())
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    await make_backend(cache=True, prompts_dir=custom).annotate(PAPER)
    await make_backend(cache=True, prompts_dir=custom).annotate(PAPER)
    assert route.call_count == 1
    (custom / "system.j2").write_text((custom / "system.j2").read_text() + "\nBe terse.")
    await make_backend(cache=True, prompts_dir=custom).annotate(PAPER)
    assert route.call_count == 2


async def test_invalid_answers_are_not_cached(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["Cooking"]))
    for _ in range(2):
        with pytest.raises(PaperFailed):
            await make_backend(cache=True, max_repairs=0).annotate(PAPER)
    assert route.call_count == 2


async def test_a_200_that_is_not_a_completion_fails_only_the_paper(mocked_llm, make_backend):
    mocked_llm.post("/chat/completions").mock(
        side_effect=[
            httpx.Response(
                200, text="<html>proxy login</html>", headers={"content-type": "text/html"}
            ),
            httpx.Response(
                200, text='{"id": "chatcmpl-1", "choi', headers={"content-type": "application/json"}
            ),
        ]
    )
    backend = make_backend()
    for _ in range(2):
        with pytest.raises(PaperFailed) as failed:
            await backend.annotate(PAPER)
        assert failed.value.kind == "bad_response"


async def test_a_model_that_refuses_temperature_is_asked_without_it(mocked_llm, make_backend):
    refused = httpx.Response(
        400,
        json={
            "error": {
                "message": "Unsupported value: 'temperature' does not support 0 with "
                "this model. Only the default (1) value is supported.",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "unsupported_value",
            }
        },
    )
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=[refused, answer(["LLMs"]), answer(["LLMs"])]
    )
    backend = make_backend(model="o4-mini")
    await backend.annotate(PAPER)
    await backend.annotate(PAPER.model_copy(update={"id": "2", "title": "Other"}))
    bodies = [sent_json(call) for call in route.calls]
    assert "temperature" in bodies[0]
    assert all("temperature" not in body for body in bodies[1:])


async def test_max_tokens_becomes_max_completion_tokens_when_asked(mocked_llm, make_backend):
    refused = error(
        400,
        "Unsupported parameter: 'max_tokens' is not supported with this "
        "model. Use 'max_completion_tokens' instead.",
        "unsupported_parameter",
    )
    route = mocked_llm.post("/chat/completions").mock(side_effect=[refused, answer(["LLMs"])])
    await make_backend(max_tokens=300).annotate(PAPER)
    retried = sent_json(route.calls[1])
    assert retried["max_completion_tokens"] == 300 and "max_tokens" not in retried


async def test_the_same_400_again_and_again_stops_the_run(mocked_llm, make_backend):
    mocked_llm.post("/chat/completions").mock(
        return_value=error(400, "Invalid value for 'seed'.", "invalid_value")
    )
    backend = make_backend()
    for i in range(4):
        with pytest.raises(PaperFailed):
            await backend.annotate(PAPER.model_copy(update={"id": str(i)}))
    with pytest.raises(BackendError, match="refused 5 requests in a row the same way"):
        await backend.annotate(PAPER)


async def test_different_400s_do_not_stop_the_run(mocked_llm, make_backend):
    mocked_llm.post("/chat/completions").mock(
        side_effect=[error(400, f"context length exceeded: {n} tokens") for n in range(8)]
    )
    backend = make_backend()
    for i in range(8):
        with pytest.raises(PaperFailed):
            await backend.annotate(PAPER.model_copy(update={"id": str(i)}))


async def test_prose_around_the_json_is_re_asked_then_taken_on_the_last_attempt(
    mocked_llm, make_backend
):
    chatty = 'Sure! Here is the answer: {"tags": ["LLMs"], "summary": "It works."} Hope it helps.'
    route = mocked_llm.post("/chat/completions").mock(
        return_value=httpx.Response(200, json=completion(chatty))
    )
    result = await make_backend(max_repairs=1).annotate(PAPER)
    assert route.call_count == 2  # re-asked once for bare JSON, then salvaged
    assert (result.tags, result.summary) == (["LLMs"], "It works.")


async def test_a_connection_error_without_text_is_named(mocked_llm, make_backend, sleeps):
    route = mocked_llm.post("/chat/completions")
    route.side_effect = [answer(["Agents"]), httpx.ReadError(""), httpx.ReadError("")]
    backend = make_backend(max_attempts=2)
    await backend.annotate(PAPER)  # the server has answered: later failures are the paper's
    other = Paper(id="2401.00002", title="Another", abstract="Something else entirely.")
    with pytest.raises(PaperFailed) as failed:
        await backend.annotate(other)
    assert failed.value.kind == "connection_error"
    assert failed.value.message.startswith("ReadError after 2 request(s)")
