"""Claude Code's recorded requests through every translation path, and answers back.

The request bodies in ``tests/fixtures/claude_code/`` were captured from Claude Code
2.1.197 (npm ``@anthropic-ai/claude-code``) through a fake upstream, then scrubbed of
paths and ids: a first turn for ``claude-opus-4-7`` (adaptive thinking, effort
``xhigh``, 64000 max tokens), a second turn for ``gpt-5.5`` (a non-Claude name: a
mid-conversation ``system`` entry, adaptive thinking, effort ``high``) and a second
turn for ``claude-sonnet-4-5`` (``thinking`` enabled with a 31999-token budget). All
carry 24 tools, cache_control, context_management and metadata.user_id.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import Message, MessageCreateParams
from google.genai import types as genai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from aigw.providers.openai import ADAPTER as OPENAI
from aigw.translate import anthropic as an
from aigw.translate import gemini as ge
from aigw.translate.common import JSON, TranslateOptions, TranslationError
from tests.translate.anthropic.helpers import accumulate
from tests.translate.anthropic.helpers import load as load_anthropic
from tests.translate.gemini.helpers import load as load_gemini

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude_code"
NAMES = ["opus-4-7-turn1", "gpt-5.5-turn2", "sonnet-4-5-turn2"]
OPENAI_PARAMS = {*CompletionCreateParamsBase.__annotations__, "stream"}
ANTHROPIC_PARAMS = {k for t in MessageCreateParams.__args__ for k in t.__annotations__}  # type: ignore[attr-defined]


def claude_code(name: str) -> JSON:
    body: JSON = json.loads((FIXTURES / f"{name}.json").read_text())["body"]
    return body


def hub_of(name: str, strict: bool = True) -> tuple[JSON, list[str]]:
    t = an.messages_to_chat_request(claude_code(name), strict=strict)
    return t.body, t.warnings


@pytest.mark.parametrize("name", NAMES)
def test_claude_code_request_to_hub_loses_nothing_that_matters(name: str) -> None:
    body = claude_code(name)
    hub, warnings = hub_of(name)
    # Strict mode accepts every field Claude Code sends, and nothing needed a warning:
    # cache_control and the clear_thinking edit are dropped silently.
    assert warnings == []
    assert len(hub["tools"]) == len(body["tools"]) == 24
    assert hub["max_tokens"] == body["max_tokens"]
    assert hub["stream"] is True and hub["stream_options"] == {"include_usage": True}
    # metadata.user_id is a JSON object as a string, too long for OpenAI: its digest.
    assert len(hub["user"]) == 64 and hub["user"] != body["metadata"]["user_id"]
    assert hub["messages"][0]["role"] == "system"
    assert "cache_control" not in json.dumps(hub)
    assert "x-anthropic-billing-header" in json.dumps(hub["messages"][0])


def test_claude_code_thinking_and_effort_to_the_hub() -> None:
    hub, _ = hub_of("opus-4-7-turn1")
    assert (hub["reasoning_effort"], hub["thinking"]) == ("xhigh", {"type": "adaptive"})
    hub, _ = hub_of("gpt-5.5-turn2")
    assert (hub["reasoning_effort"], hub["thinking"]) == ("high", {"type": "adaptive"})
    hub, _ = hub_of("sonnet-4-5-turn2")
    assert hub["reasoning_effort"] == "high"
    assert hub["thinking"] == {"type": "enabled", "budget_tokens": 31999}


def test_claude_code_mid_conversation_system_entry_keeps_its_place() -> None:
    body = claude_code("gpt-5.5-turn2")
    assert [m["role"] for m in body["messages"]] == ["user", "system", "assistant", "user"]
    hub, _ = hub_of("gpt-5.5-turn2")
    assert [m["role"] for m in hub["messages"]] == ["system", "user", "system", "assistant", "tool"]
    assert hub["messages"][2]["content"] == body["messages"][1]["content"]
    (call,) = hub["messages"][3]["tool_calls"]
    assert call["function"]["name"] == "Bash"
    assert hub["messages"][4]["tool_call_id"] == call["id"]
    assert hub["messages"][4]["content"] == "captured-ok"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("model", ["gpt-5.5", "o4-mini"])
def test_claude_code_request_to_openai(name: str, model: str) -> None:
    hub, _ = hub_of(name)
    out = OPENAI.from_hub(hub, TranslateOptions(upstream_model=model))
    body = out.body
    assert set(body) <= OPENAI_PARAMS, set(body) - OPENAI_PARAMS  # nothing OpenAI rejects
    assert body["max_completion_tokens"] == claude_code(name)["max_tokens"]
    assert len(body["user"]) <= 64
    if name == "opus-4-7-turn1" and model == "o4-mini":  # o-series stop at "high"
        assert body["reasoning_effort"] == "high"
        assert out.warnings == ["'reasoning_effort' xhigh was lowered to high for o4-mini"]
    else:
        assert body["reasoning_effort"] == ("xhigh" if name == "opus-4-7-turn1" else "high")
        assert out.warnings == []


def test_claude_code_request_to_a_model_that_does_not_reason() -> None:
    hub, _ = hub_of("gpt-5.5-turn2")
    out = OPENAI.from_hub(hub, TranslateOptions(upstream_model="gpt-4.1"))
    assert "reasoning_effort" not in out.body
    assert out.warnings == ["'reasoning_effort' was dropped: gpt-4.1 does not reason"]


_BUDGET = {"thinkingBudget": 24576, "includeThoughts": True}
_HIGH = {"thinkingLevel": "high", "includeThoughts": True}


@pytest.mark.parametrize(
    ("name", "model", "thinking"),
    [
        # Adaptive thinking with an effort: the effort's budget or level.
        ("opus-4-7-turn1", "gemini-2.5-flash", _BUDGET),
        ("opus-4-7-turn1", "gemini-2.5-pro", _BUDGET),
        ("opus-4-7-turn1", "gemini-3-flash-preview", _HIGH),
        ("gpt-5.5-turn2", "gemini-2.5-flash", _BUDGET),
        ("gpt-5.5-turn2", "gemini-3-pro-preview", _HIGH),
        # A numeric budget goes as a number, capped at the model's ceiling.
        ("sonnet-4-5-turn2", "gemini-2.5-flash", _BUDGET),
        ("sonnet-4-5-turn2", "gemini-2.5-pro", {"thinkingBudget": 31999, "includeThoughts": True}),
        ("sonnet-4-5-turn2", "gemini-3-flash-preview", _BUDGET),
    ],
)
def test_claude_code_request_to_gemini(name: str, model: str, thinking: JSON) -> None:
    hub, _ = hub_of(name)
    out = ge.chat_to_gemini_request(hub, TranslateOptions(upstream_model=model))
    body = out.body
    for content in body["contents"]:
        genai.Content.model_validate(content)  # the SDK's own model of the wire shape
    genai.Content.model_validate(body["systemInstruction"])
    assert len(body["tools"][0]["functionDeclarations"]) == 24
    assert body["generationConfig"]["maxOutputTokens"] == claude_code(name)["max_tokens"]
    assert body["generationConfig"]["thinkingConfig"] == thinking
    # The losses: the user id (benign) and, where capped, the thinking budget.
    assert "'user' was dropped: Gemini has no equivalent." in out.warnings
    assert len(out.warnings) == (2 if name == "sonnet-4-5-turn2" and "pro" not in model else 1)
    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # turns alternate


def test_claude_code_mid_conversation_system_reaches_gemini_as_instruction() -> None:
    hub, _ = hub_of("gpt-5.5-turn2")
    body = ge.chat_to_gemini_request(hub, TranslateOptions(upstream_model="gemini-2.5-flash")).body
    texts = [p["text"] for p in body["systemInstruction"]["parts"]]
    assert texts[-1].startswith("Available agent types for the Agent tool")
    (call,) = [p for c in body["contents"] for p in c["parts"] if "functionCall" in p]
    (result,) = [p for c in body["contents"] for p in c["parts"] if "functionResponse" in p]
    assert call["functionCall"]["name"] == result["functionResponse"]["name"] == "Bash"
    assert result["functionResponse"]["response"] == {"result": "captured-ok"}


@pytest.mark.parametrize("name", NAMES)
def test_claude_code_hub_to_anthropic_again(name: str) -> None:
    # The hub form must still make a valid Anthropic request (another client, same body).
    hub, _ = hub_of(name)
    out = an.chat_to_messages_request(hub, TranslateOptions(upstream_model="claude-sonnet-4-5"))
    assert set(out.body) <= ANTHROPIC_PARAMS
    if name == "opus-4-7-turn1":
        assert out.body["thinking"] == {"type": "enabled", "budget_tokens": 32768}
    elif name == "sonnet-4-5-turn2":
        # The second turn is inside a tool loop: Anthropic would need the signed
        # thinking block of the first, which the hub cannot carry.
        assert "thinking" not in out.body
        assert any("tool loop" in w for w in out.warnings)


def test_unknown_future_fields_are_reported_or_refused() -> None:
    body = {**claude_code("opus-4-7-turn1"), "speculative_decoding": {"type": "auto"}}
    with pytest.raises(TranslationError) as e:
        an.messages_to_chat_request(body, refuse_unknown=True)
    assert e.value.param == "speculative_decoding"
    for strict in (True, False):  # reported, never refused, unless asked to
        t = an.messages_to_chat_request(body, strict=strict)
        assert t.warnings == [
            "the field 'speculative_decoding' is unknown to the gateway; "
            "'speculative_decoding' was ignored"
        ]
        assert "speculative_decoding" not in t.body


def test_other_context_edits_are_reported() -> None:
    body = {
        **claude_code("opus-4-7-turn1"),
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    }
    assert an.messages_to_chat_request(body).warnings == [
        "context_management edits run only on Anthropic and were ignored; "
        "the target sees the whole conversation"
    ]


def test_server_tools_and_mcp_are_refused_when_strict_and_dropped_otherwise() -> None:
    body = {
        **claude_code("opus-4-7-turn1"),
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}],
    }
    body["tools"] = [*body["tools"], {"type": "web_search_20250305", "name": "web_search"}]
    with pytest.raises(TranslationError):
        an.messages_to_chat_request(body)
    t = an.messages_to_chat_request(body, strict=False)
    assert len(t.body["tools"]) == 24 and len(t.warnings) == 2


# -- answers back to Claude Code ----------------------------------------------------------


def to_anthropic_events(chunks: list[JSON], model: str = "claude-sonnet-4-5") -> Message:
    s = an.ChatToMessagesStream(model=model, input_tokens=100)
    events = [e for c in chunks for e in s.feed(c)] + s.finish()
    return accumulate(events)


def test_openai_tool_call_stream_reaches_claude_code_as_tool_use() -> None:
    chunks = load_anthropic("openai_stream_tool_call.json")
    msg = to_anthropic_events(chunks)
    (use,) = [b for b in msg.content if b.type == "tool_use"]
    assert use.name == "get_weather" and msg.stop_reason == "tool_use"


def test_gemini_thought_and_call_stream_reach_claude_code_as_thinking_and_tool_use() -> None:
    g = ge.GeminiToChatStream(model="claude-sonnet-4-5")
    chunks = [c for ev in load_gemini("stream_function_call.json")["events"] for c in g.feed(ev)]
    chunks.append(g.final_usage_chunk())
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    msg = to_anthropic_events(chunks)
    assert [b.type for b in msg.content] == ["thinking", "tool_use"]
    assert msg.content[0].thinking  # type: ignore[union-attr]
    assert msg.stop_reason == "tool_use"
    assert msg.usage.output_tokens == 17 + 56  # thoughts are output, as Anthropic bills them


def test_gemini_thoughts_reach_claude_code_in_a_plain_answer() -> None:
    payload = load_gemini("generate_content_thinking_max_tokens.json")["response"]
    hub = ge.gemini_to_chat_response(payload, model="m")
    ChatCompletion.model_validate(hub)
    msg = Message.model_validate(an.chat_to_messages_response(hub, model="m"))
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking.startswith("Okay, let me break this down.")  # type: ignore[union-attr]
    assert msg.stop_reason == "max_tokens"


# -- Anthropic thinking to google-genai clients ---------------------------------------


def test_anthropic_thinking_reaches_gemini_clients_as_thought_parts() -> None:
    hub = an.messages_to_chat_response(load_anthropic("anthropic_message_thinking.json"), model="m")
    out = ge.chat_to_gemini_response(hub)
    resp = genai.GenerateContentResponse.model_validate(out)
    parts = resp.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts[0].thought is True and parts[0].text  # type: ignore[index]
    assert not parts[-1].thought and resp.text == parts[-1].text  # type: ignore[index]


def test_anthropic_thinking_stream_reaches_gemini_clients_as_thought_parts() -> None:
    a = an.MessagesToChatStream(model="m")
    g = ge.ChatToGeminiStream(model="m")
    objs: list[Any] = []
    for name, data in load_anthropic("anthropic_stream_thinking.json"):
        for chunk in a.feed(name, data):
            objs += g.feed(chunk)
    objs += g.feed(a.final_usage_chunk()) + g.finish()
    resps = [genai.GenerateContentResponse.model_validate(o) for o in objs]
    thought = "".join(
        p.text or ""
        for r in resps
        for c in r.candidates or []
        for p in (c.content.parts if c.content and c.content.parts else [])
        if p.thought
    )
    answer = "".join(r.text or "" for r in resps if r.candidates)
    assert thought and answer and thought not in answer


# -- google-genai thinking_budget to Anthropic ----------------------------------------


def gemini_client(config: JSON) -> JSON:
    return ge.gemini_to_chat_request(
        {"contents": [{"role": "user", "parts": [{"text": "Think."}]}], "generationConfig": config},
        model="claude-sonnet-4-5",
        stream=False,
    )


def test_gemini_thinking_budget_reaches_anthropic_as_the_same_number() -> None:
    hub = gemini_client({"thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}})
    out = an.chat_to_messages_request(hub, TranslateOptions(upstream_model="claude-sonnet-4-5"))
    assert out.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}  # not 4096
    assert out.body["max_tokens"] == 4096 and out.warnings == []


@pytest.mark.parametrize(
    ("config", "thinking", "max_tokens", "warning"),
    [
        # Below Anthropic's minimum: raised to 1024.
        ({"thinkingBudget": 512}, 1024, 4096, "thinking budget 512 was raised to 1024"),
        # Not below max_tokens: lowered to fit.
        (
            {"thinkingBudget": 3000, "maxOutputTokens": 2500},
            1250,
            2500,
            "thinking budget 3000 was lowered to 1250",
        ),
        # A default limit grows instead.
        ({"thinkingBudget": 8000}, 8000, 12096, None),
    ],
)
def test_gemini_thinking_budget_adjusted_to_anthropic_rules(
    config: JSON, thinking: int, max_tokens: int, warning: str | None
) -> None:
    limit = config.pop("maxOutputTokens", None)
    gen: JSON = {"thinkingConfig": config}
    if limit is not None:
        gen["maxOutputTokens"] = limit
    hub = gemini_client(gen)
    out = an.chat_to_messages_request(hub, TranslateOptions(upstream_model="claude-sonnet-4-5"))
    assert out.body["thinking"] == {"type": "enabled", "budget_tokens": thinking}
    assert out.body["max_tokens"] == max_tokens
    if warning is None:
        assert out.warnings == []
    else:
        assert any(w.startswith(warning) for w in out.warnings), out.warnings


def test_every_field_of_the_sdk_is_known() -> None:
    # The anthropic SDK's (beta) create parameters: none is refused as unknown, even
    # under strict, except those whose loss changes the answer.
    from anthropic.types.beta import message_create_params as beta

    fields = {k for t in beta.MessageCreateParams.__args__ for k in t.__annotations__}  # type: ignore[attr-defined]
    fields -= {"betas"}  # the SDK sends it as the anthropic-beta header
    lossy = {"mcp_servers", "container", "compaction"}
    for name in sorted(fields - lossy - {"model", "messages", "max_tokens"}):
        body = {**claude_code("opus-4-7-turn1"), name: None}
        an.messages_to_chat_request(body)  # a null stands for "sent": no unknown-field 400
    body = {
        **claude_code("opus-4-7-turn1"),
        "speed": "fast",
        "cache_control": {"type": "ephemeral"},
        "thread": {"type": "create"},
        "fallbacks": "default",
    }
    t = an.messages_to_chat_request(body)
    assert t.warnings == [
        "'speed' is Anthropic's own and was ignored",
        "'fallbacks' is Anthropic's own and was ignored",
        "'thread' is Anthropic's own and was ignored",
    ]
    with pytest.raises(TranslationError):
        an.messages_to_chat_request({**body, "thread": {"type": "continue"}})


def test_compaction_and_fallback_blocks_in_the_history() -> None:
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "compaction", "content": "Earlier: we fixed the parser."},
                    {"type": "text", "text": "Go on."},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "On it."},
                    {"type": "fallback", "to": {"model": "claude-x"}},
                ],
            },
            {"role": "user", "content": "Thanks."},
        ],
    }
    t = an.messages_to_chat_request(body)
    assert t.body["messages"][0]["content"][0] == {
        "type": "text",
        "text": "Earlier: we fixed the parser.",
    }
    assert t.body["messages"][1] == {"role": "assistant", "content": "On it."}
    assert t.warnings == []


def test_system_entry_between_a_tool_call_and_its_result_follows_the_result() -> None:
    body = claude_code("gpt-5.5-turn2")
    user, system, assistant, results = body["messages"]
    # The reminder moved between the call and its result: OpenAI needs them adjacent.
    hub = an.messages_to_chat_request({**body, "messages": [user, assistant, system, results]})
    assert [m["role"] for m in hub.body["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "system",
    ]
