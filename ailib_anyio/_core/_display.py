"""How responses, streams and errors show in a notebook: the text behind IPython's
``_repr_html_`` and ``_repr_markdown_`` hooks (Jupyter, VS Code, Colab call them when an
object is a cell's value or is passed to ``display()``).

Each object is shown as a small card: a title, a body (the reply's text, an error's
message) and a list of fields. Pure string work, no I/O. Every value is escaped
(``html.escape``, and markdown's own specials in markdown), so a reply or a server's
error text cannot inject markup or script; an error's texts are masked again here
(``mask_text``, ``mask_credentials``) so a card never shows a secret.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._secrets import mask_credentials, mask_text

if TYPE_CHECKING:
    from ._errors import AiLibError
    from ._types import ChatResponse

__all__ = [
    "error_html",
    "error_markdown",
    "response_html",
    "response_markdown",
    "stream_html",
    "stream_markdown",
    "stream_state",
]

Field = tuple[str, str]

#: what to try next, by error kind (shown as the card's "hint")
HINTS = {
    "authentication": "the API key was refused: check the provider's key variable or api_key=",
    "permission_denied": "the key has no access to this model or feature",
    "not_found": "check the model id and base_url",
    "rate_limited": "wait before retrying, or lower the concurrency: max_inflight=, rate_limit=",
    "quota_exhausted": "the account is out of quota or credit: waiting will not help",
    "request_too_large": "shorten the prompt, or lower max_tokens",
    "invalid_request": "the request was refused as invalid: see the message",
    "overloaded": "the provider is overloaded: retry later, or add fallbacks=",
    "server_error": "the provider failed: retry later, or add fallbacks=",
    "timeout": "raise timeout= or Deadlines(...), or retry",
    "transport": "the connection failed: check base_url and the network",
    "circuit_open": "the circuit breaker is open: calls fail fast until its cooldown ends",
    "content_filter": "the provider's content filter stopped the reply",
}

# markdown's inline specials; '<', '>' and '&' are html.escape's
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|#~])")
# an ordered list's marker at the start of a line ("1." or "1)")
_LINE_START = re.compile(r"^(\d+)([.)])")


def _html(text: str) -> str:
    return html.escape(text, quote=True)


def _markdown(text: str) -> str:
    """``text`` as literal markdown on one line: no markup, no HTML, no line break."""
    # markdown's specials first: escaping them after HTML would break its entities
    escaped = html.escape(_MARKDOWN_SPECIALS.sub(r"\\\1", text), quote=False)
    return " ".join(escaped.split())


def _card_html(title: str, fields: Sequence[Field], body: str | None) -> str:
    rows = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{_html(name)}</th>'
        f'<td style="text-align:left">{_html(value)}</td></tr>'
        for name, value in fields
    )
    shown = f'<pre style="white-space:pre-wrap;margin:0.4em 0">{_html(body)}</pre>' if body else ""
    head = f"<strong>{_html(title)}</strong>"
    return f'<div class="ailib-anyio">{head}{shown}<table>{rows}</table></div>'


def _markdown_line(line: str) -> str:
    """One line of literal text in a markdown block: escaped, its indentation kept, and
    nothing at its start read as a list, a heading or a quote."""
    text = line.lstrip(" ")
    indent = "&nbsp;" * (len(line) - len(text))
    escaped = _LINE_START.sub(r"\1\\\2", _markdown(text))
    if escaped[:1] in ("-", "+", "="):
        escaped = "\\" + escaped
    return indent + escaped


def _card_markdown(title: str, fields: Sequence[Field], body: str | None) -> str:
    lines = [f"**{_markdown(title)}**", ""]
    if body:
        # literal text, line by line (hard breaks): a reply's HTML or markdown shows as
        # written, exactly as in the HTML card
        lines.append("  \n".join(f"> {_markdown_line(line)}" for line in body.splitlines()))
        lines.append("")
    lines.extend(f"- {_markdown(name)}: {_markdown(value)}" for name, value in fields)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- responses


def _response_fields(response: ChatResponse) -> list[Field]:
    fields: list[Field] = []
    if response.model:
        fields.append(("model", response.model))
    finish = response.finish_reason
    if finish is not None:
        raw = f" ({finish.raw})" if finish.raw and finish.raw != finish.normalized else ""
        fields.append(("finish", f"{finish.normalized}{raw}"))
    fields.extend(
        ("tool call", f"{call.name}({json.dumps(dict(call.arguments), ensure_ascii=False)})")
        for call in response.tool_calls
    )
    if response.refusal:
        fields.append(("refusal", response.refusal))
    if response.reasoning:
        fields.append(("reasoning", f"{len(response.reasoning)} characters"))
    usage = response.usage
    if usage is not None:
        tokens = f"{usage.input_tokens} in, {usage.output_tokens} out"
        extra = [
            f"{count} {what}"
            for what, count in (
                ("cached", usage.cached_input_tokens),
                ("reasoning", usage.reasoning_tokens),
            )
            if count
        ]
        fields.append(("tokens", tokens + (f" ({', '.join(extra)})" if extra else "")))
    cost = response.cost
    if cost is not None:
        fields.append(("cost", f"{cost.total_cost} {cost.currency}"))
    if response.request_id:
        fields.append(("request id", response.request_id))
    return fields


def response_html(response: ChatResponse) -> str:
    return _card_html("ChatResponse", _response_fields(response), response.content)


def response_markdown(response: ChatResponse) -> str:
    return _card_markdown("ChatResponse", _response_fields(response), response.content)


# ---------------------------------------------------------------- streams


def _stream_fields(state: str, response: ChatResponse, events: int | None) -> list[Field]:
    fields: list[Field] = [("state", state)]
    if events is not None:
        fields.append(("events so far", str(events)))
    fields.append(("text so far", f"{len(response.content)} characters"))
    return fields + _response_fields(response)


def stream_html(title: str, state: str, response: ChatResponse, events: int | None) -> str:
    """A stream's card: ``state`` (``unopened``, ``open``, ``finished``, ``closed``),
    the events delivered when counted, and the response accumulated so far."""
    fields = _stream_fields(state, response, events)
    return _card_html(f"{title} ({state})", fields, response.content)


def stream_markdown(title: str, state: str, response: ChatResponse, events: int | None) -> str:
    return _card_markdown(
        f"{title} ({state})", _stream_fields(state, response, events), response.content
    )


def stream_state(entered: bool, closed: bool, response: ChatResponse) -> str:
    """The state a stream's card shows."""
    if not entered:
        return "unopened"
    if closed:
        return "closed"
    return "finished" if response.finish_reason is not None else "open"


# ---------------------------------------------------------------- errors


def _masked(text: str) -> str:
    return mask_credentials(mask_text(text))


def _error_fields(error: AiLibError) -> list[Field]:
    kind = error.kind
    fields: list[Field] = [("kind", f"{kind} ({error.error_code})")]
    where = "/".join(part for part in (error.provider, error.model) if part)
    if where:
        fields.append(("provider", where))
    if error.status_code is not None:
        fields.append(("status", str(error.status_code)))
    if error.request_id:
        fields.append(("request id", error.request_id))
    retry = "yes" if error.retryable else "no"
    if error.retry_after is not None:
        retry += f", after {error.retry_after:g} s"
    fields.append(("retryable", retry))
    if len(error.attempts) > 1:
        fields.append(("attempts", str(len(error.attempts))))
    if error.response is not None and error.response.content:
        fields.append(("partial reply", f"{len(error.response.content)} characters"))
    hint = HINTS.get(kind)
    if hint is not None:
        fields.append(("hint", hint))
    return [(name, _masked(value)) for name, value in fields]


def error_html(error: AiLibError) -> str:
    return _card_html(type(error).__name__, _error_fields(error), _masked(error.message))


def error_markdown(error: AiLibError) -> str:
    return _card_markdown(type(error).__name__, _error_fields(error), _masked(error.message))
