"""A request's input tokens, as Plano counts them for its rate limits (pure, CPU only).

The text: Plano's `extract_messages_text` per client API.  Chat: every
message's content, each preceded by a space (a part list joined by spaces,
an image part as `[Image]`).  Messages: the system prompt and every
message's text blocks, joined by spaces.  Responses: a string `input` as is;
otherwise each message item preceded by a space, its content items each
preceded by a space (`[Image]`, `[File]`, `[Audio]` for media).  One
addition, on purpose: tool results (Chat `tool` messages already count;
Messages `tool_result` blocks and Responses `function_call_output` items
here too), which Plano leaves out, so a client cannot send its bulk as a
tool result to pass under a limit.

The tokenizer: Plano counts with tiktoken's `o200k_base` (what `gpt-4o`
uses) for every model, except the `gpt-4` family before `gpt-4o`
(`gpt-4`, `gpt-4-*`), counted with `cl100k_base` as tiktoken maps them.
The encodings come from `toktok` (toktok-rs on PyPI), whose vocabularies
are compiled into the wheel: tiktoken itself downloads its BPE files at
first use, which a gateway with no network (or a locked-down one) cannot.
toktok's token ids are tiktoken's (no difference in 22,297 varied texts,
both encodings, when this was chosen), and counting is cheaper: ~190 µs of
CPU for a 32 KiB prompt against tiktoken's ~2.3 ms (1 KiB: ~35 µs both).
Like tiktoken's, an encoding is built at first use: ~2 s of CPU and ~64 MB
for `o200k_base`, ~0.9 s and ~45 MB for `cl100k_base` (tiktoken: ~1.5 s and
~74 MB for `o200k_base`), which is why the gateway builds them in a thread
(`load_encoding`), never on its event loop.  toktok itself is imported there
too, the first time an encoding is built (the gateway does it at start-up
when any limit is configured, `gateway.access.open_access`): a gateway
without rate limits never loads its compiled library (~1.6 MB resident).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any, Final

from plano_trio.apis.kind import Api

O200K: Final = "o200k_base"
CL100K: Final = "cl100k_base"


def encoding_for(model: str) -> str:
    """The encoding Plano counts `model`'s input with (the bare model id, as Plano passes it)."""
    if model == "gpt-4" or model.startswith("gpt-4-"):
        return CL100K
    return O200K


_toktok: ModuleType | None = None
"""The tokenizer library, once `_library` imported it."""


def _library() -> ModuleType:
    """toktok, imported the first time it is needed (see the module docstring)."""
    global _toktok
    if _toktok is None:
        import toktok  # type: ignore[import-untyped]

        _toktok = toktok
    return _toktok


def load_encoding(name: str) -> None:
    """Build encoding `name` now (seconds of CPU, see the module docstring); later counts reuse it."""
    _library().batch_count([""], name, threads=1)


def count_tokens(model: str, text: str) -> int:
    """Tokens of `text` in `model`'s encoding (special-token text counts as ordinary text).  The gateway
    has built the encoding, and so imported toktok, before it counts (`load_encoding`)."""
    if not text:
        return 0
    counts: list[int] = (_toktok or _library()).batch_count([text], encoding_for(model), threads=1)
    return counts[0]


def input_text(api: Api, request: dict[str, Any]) -> str:
    """The text Plano counts for a request in the client's `api` (see the module docstring)."""
    if api is Api.CHAT:
        return "".join(" " + _chat_content(m.get("content")) for m in _dicts(request.get("messages")))
    if api is Api.MESSAGES:
        parts = _blocks_text(request.get("system"))
        for message in _dicts(request.get("messages")):
            parts += _blocks_text(message.get("content"))
        return " ".join(parts)
    if api is Api.RESPONSES:
        return _responses_input(request.get("input"))
    return ""


def _dicts(value: Any) -> Iterable[dict[str, Any]]:
    return (item for item in value if isinstance(item, dict)) if isinstance(value, list) else ()


def _chat_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in _dicts(content):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind == "image_url":
            parts.append("[Image]")
    return " ".join(parts)


def _blocks_text(content: Any) -> list[str]:
    """A Messages system prompt or message content: its text, block by block."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in _dicts(content):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_result":
            texts += _blocks_text(block.get("content"))
    return texts


_MEDIA: Final = {"input_image": "[Image]", "input_file": "[File]", "input_audio": "[Audio]"}


def _responses_input(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # one item instead of a list: no leading space, as Plano
        return _responses_message(value) if _is_message(value) else ""
    out: list[str] = []
    for item in _dicts(value):
        if _is_message(item):
            out.append(" " + _responses_message(item))
        elif item.get("type") == "function_call_output" and isinstance(item.get("output"), str):
            out.append(" " + item["output"])
    return "".join(out)


def _is_message(item: dict[str, Any]) -> bool:
    return item.get("type", "message") == "message" and "role" in item


def _responses_message(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    out: list[str] = []
    for part in _dicts(content):
        kind = part.get("type")
        text = part.get("text")
        if kind in ("input_text", "output_text") and isinstance(text, str):
            out.append(" " + text)
        elif kind in _MEDIA:
            out.append(" " + _MEDIA[kind])
    return "".join(out)
