"""How responses and errors show in a notebook (``_repr_html_``, ``_repr_markdown_``):
readable, escaped (a reply or a server's text cannot inject markup) and never a secret."""

from __future__ import annotations

from decimal import Decimal

from ailib_anyio import (
    AiLibError,
    ChatResponse,
    ConfigurationError,
    FinishReason,
    RateLimitedError,
    ToolCall,
    Usage,
)
from ailib_anyio._core._cost import ModelPricing
from ailib_anyio._core._display import stream_html, stream_markdown, stream_state
from ailib_anyio._core._secrets import SECRETS

HOSTILE = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"


def response(**kw: object) -> ChatResponse:
    fields: dict[str, object] = {
        "content": "Paris is the capital.",
        "model": "gpt-4o",
        "finish_reason": FinishReason("length", "max_tokens"),
        "usage": Usage(12, 5, cached_input_tokens=2),
        "request_id": "req_42",
        "pricing": ModelPricing("gpt-4o", Decimal("2.5"), Decimal("10")),
    }
    fields.update(kw)
    return ChatResponse(**fields)  # type: ignore[arg-type]


def test_a_response_shows_its_reply_and_fields() -> None:
    reply = response(tool_calls=(ToolCall("c1", "get_weather", {"city": "Paris"}),))
    html = reply._repr_html_()
    assert html.startswith('<div class="ailib-anyio"><strong>ChatResponse</strong>')
    assert "<pre" in html and "Paris is the capital." in html
    for name, value in [
        ("model", "gpt-4o"),
        ("finish", "length (max_tokens)"),
        ("tool call", "get_weather({&quot;city&quot;: &quot;Paris&quot;})"),
        ("tokens", "12 in, 5 out (2 cached)"),
        ("cost", f"{reply.cost.total_cost} USD"),  # type: ignore[union-attr]
        ("request id", "req_42"),
    ]:
        assert f">{name}</th><td" in html
        assert f">{value}</td>" in html
    markdown = reply._repr_markdown_()
    assert markdown.splitlines()[:3] == ["**ChatResponse**", "", "> Paris is the capital."]
    assert "- tokens: 12 in, 5 out (2 cached)" in markdown
    assert "- request id: req\\_42" in markdown


def test_a_bare_response_shows_only_what_it_has() -> None:
    reply = ChatResponse(content="hi")
    assert "<table></table>" in reply._repr_html_()
    assert reply._repr_markdown_() == "**ChatResponse**\n\n> hi\n\n"


def test_hostile_reply_text_is_escaped() -> None:
    reply = response(content=HOSTILE + "\n# title\n- item\n1. first\n```", model=HOSTILE)
    html = reply._repr_html_()
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;img" in html
    markdown = reply._repr_markdown_()
    assert "<script" not in markdown and "<img" not in markdown
    body = markdown.split("\n\n")[1].split("  \n")
    # every line literal: no heading, list or code fence starts in the reply
    assert body == [
        "> &lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;",
        "> \\# title",
        "> \\- item",
        "> 1\\. first",
        "> \\`\\`\\`",
    ]


def test_markdown_keeps_indentation_and_escapes_fields() -> None:
    reply = ChatResponse(content="def f():\n    return 1", model="a|b*c_d[e]")
    markdown = reply._repr_markdown_()
    assert "> def f():  \n> &nbsp;&nbsp;&nbsp;&nbsp;return 1" in markdown
    assert "- model: a\\|b\\*c\\_d\\[e\\]" in markdown


def test_an_error_shows_kind_where_status_request_id_and_hint() -> None:
    error = RateLimitedError(
        "Slow down",
        provider="openai",
        model="gpt-4o",
        status_code=429,
        request_id="req_7",
        retry_after=7,
    )
    html = error._repr_html_()
    assert "<strong>RateLimitedError</strong>" in html
    for name, value in [
        ("kind", "rate_limited (E2001)"),
        ("provider", "openai/gpt-4o"),
        ("status", "429"),
        ("request id", "req_7"),
        ("retryable", "yes, after 7 s"),
        ("hint", "wait before retrying, or lower the concurrency: max_inflight=, rate_limit="),
    ]:
        assert f">{name}</th><td" in html
        assert f">{value}</td>" in html
    markdown = error._repr_markdown_()
    assert markdown.startswith("**RateLimitedError**\n\n> Slow down\n\n- kind: rate\\_limited")
    assert "- retryable: yes, after 7 s" in markdown


def test_an_error_without_context_has_no_hint() -> None:
    error = ConfigurationError("no key")
    html = error._repr_html_()
    assert ">kind</th><td" in html and ">retryable</th>" in html
    assert ">hint</th>" not in html and ">provider</th>" not in html
    assert AiLibError("x")._repr_markdown_().endswith("- retryable: no\n")


def test_error_text_is_escaped_and_secrets_masked() -> None:
    secret = "sk-display-secret-0123456789"
    error = AiLibError(
        f"server said {HOSTILE}\nAuthorization: Bearer abcdef123456", request_id="<b>id</b>"
    )
    SECRETS.add([secret])
    try:
        error.message = f"{error.message} key={secret}"  # a secret registered after the error
        for text in (error._repr_html_(), error._repr_markdown_()):
            assert secret not in text and "abcdef123456" not in text
            assert "<script" not in text and "<b>" not in text
            assert "&lt;script&gt;" in text and "&lt;b&gt;id&lt;/b&gt;" in text
            assert "&lt;redacted&gt;" in text
    finally:
        SECRETS.discard([secret])


def test_stream_cards() -> None:
    partial = ChatResponse(content="Once upon", model="gpt-4o")
    assert stream_state(False, False, partial) == "unopened"
    assert stream_state(True, False, partial) == "open"
    done = response()
    assert stream_state(True, False, done) == "finished"
    assert stream_state(True, True, done) == "closed"
    html = stream_html("SyncChatStream", "open", partial, 3)
    assert "<strong>SyncChatStream (open)</strong>" in html
    assert '>events so far</th><td style="text-align:left">3</td>' in html
    assert '>text so far</th><td style="text-align:left">9 characters</td>' in html
    assert "Once upon</pre>" in html
    assert ">events so far</th>" not in stream_html("ChatStream", "open", partial, None)
    markdown = stream_markdown("ChatStream", "finished", done, None)
    assert markdown.startswith("**ChatStream (finished)**\n\n> Paris is the capital.")
    assert "- state: finished\n- text so far: 21 characters\n- model: gpt-4o" in markdown
