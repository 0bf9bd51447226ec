"""Reading the router model's answer and turning a route into a ranked list of models.

The router answers an OpenAI chat completion whose content should be
`{"route": ["name", ...]}`.  Small models write it loosely, so, as Plano
does, single quotes become double quotes and literal backslash-n pairs are
removed before the JSON is read (which also breaks a route name holding an
apostrophe, as it does in Plano).  The first returned name that is a known
route wins; its models are then ordered by the route's `prefer` policy.

Plano reads the reply into its full typed completion (`id`, `created`,
`usage`, ... all required); here only `choices[0].message.content` is read,
so a router whose provider leaves out `usage` still works.  Serde's reading
of a struct from a JSON array (`[["code"]]` for `{"route": ["code"]}`) is
not reproduced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from plano_trio.config.schema import RoutingPreference

from .prompt import unique_by_name
from .rates import ModelRates

ERROR_BODY_LIMIT = 512
"""Most bytes of a non-JSON error body quoted in the error (an HTML error page can be huge)."""

_T = TypeVar("_T")


class RouterReplyError(ValueError):
    """The router's 2xx answer is not a chat completion, or its content is not a route list."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_router_reply(body: bytes) -> list[str]:
    """The route names of a router's (2xx) chat completion, in its order, empty strings dropped.

    No choices, no content or empty content mean "no route" (`[]`); a body
    that is not a completion, or content that is not `{"route": [...]}`
    after the quote and newline fix, raises `RouterReplyError`.
    """
    completion = _loads(body.decode("utf-8-sig", "replace"), "router reply is not JSON")
    if not isinstance(completion, dict):
        raise RouterReplyError("router reply is not a JSON object")
    choices = completion.get("choices")
    if not isinstance(choices, list):
        raise RouterReplyError("router reply has no choices list")
    if not choices:
        return []
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise RouterReplyError("router reply's first choice has no message")
    content = message.get("content")
    if content is None or content == "":
        return []
    if not isinstance(content, str):
        raise RouterReplyError("router reply's content is not a string")
    return parse_route_content(content)


def parse_route_content(content: str) -> list[str]:
    """The names in a router's `{"route": [...]}` content (loosely written JSON tolerated as Plano does)."""
    if not content:
        return []
    fixed = content.replace("'", '"').replace("\\n", "")
    answer = _loads(fixed, "router content is not JSON")
    if not isinstance(answer, dict):
        raise RouterReplyError("router content is not a JSON object")
    routes = answer.get("route")
    if routes is None:
        return []
    if not isinstance(routes, list) or not all(isinstance(name, str) for name in routes):
        raise RouterReplyError("router content's route is not a list of names")
    return [name for name in routes if name]


def pick_route(names: Iterable[str], preferences: Iterable[RoutingPreference]) -> RoutingPreference | None:
    """The first returned name that is a route; empty and unknown names are skipped.

    When several preferences share a name the last one counts, as Plano's
    name-keyed map has it.
    """
    by_name = {preference.name: preference for preference in unique_by_name(preferences)}
    for name in names:
        if name and name in by_name:
            return by_name[name]
    return None


def rank_models(
    preference: RoutingPreference,
    rates: Callable[[str], ModelRates | None],
    latency: Callable[[str], float | None],
) -> list[str]:
    """The route's models in the order its `prefer` policy puts them.

    `cheapest` sorts by input plus output price, `fastest` by the latency
    metric, both ascending and stable; models with no (or NaN) data follow in
    their configured order.  Any other policy (`none`, empty, absent) keeps
    the configured order.  Each model is looked up by its full name only, as
    Plano's ranking does: Plano's cost table also holds bare ids (models.dev
    entries are stored as `provider/model` and as `model`), and its bare-id
    fallback (`lookup_with_bare_fallback`) belongs to the budget's rate
    lookup, not to ranking.
    """
    models = list(preference.models)
    metric: Callable[[str], float | None]
    if preference.prefer == "cheapest":
        metric = lambda model: _total(rates(model))  # noqa: E731
    elif preference.prefer == "fastest":
        metric = latency
    else:
        return models
    with_data: list[tuple[float, str]] = []
    without_data: list[str] = []
    for model in models:
        value = metric(model)
        if value is None or math.isnan(value):
            without_data.append(model)
        else:
            with_data.append((value, model))
    with_data.sort(key=lambda pair: pair[0])
    return [model for _, model in with_data] + without_data


def _total(rates: ModelRates | None) -> float | None:
    return None if rates is None else rates.total_per_m


def lookup_with_bare_fallback(table: Mapping[str, _T], model: str) -> _T | None:
    """`table[model]`, else the entry of the id after the first "/" (Plano's per-model rate lookup)."""
    found = table.get(model)
    if found is None and "/" in model:
        found = table.get(model.split("/", 1)[1])
    return found


def upstream_error_message(body: bytes) -> str:
    """What a failed router answer says: an OpenAI error envelope's message, else the body's first 512 bytes.

    The envelope's `param` and `type` are appended as Plano appends them:
    `message (param=...) [type=...]`.
    """
    text = body.decode("utf-8-sig", "replace")
    try:
        envelope = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        envelope = None
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        param = error.get("param")
        kind = error.get("type")
        if isinstance(message, str) and _optional_str(param) and _optional_str(kind):
            if param is not None:
                message += f" (param={param})"
            if kind is not None:
                message += f" [type={kind}]"
            return message
    return _truncate_utf8(text, ERROR_BODY_LIMIT)


def router_error_message(status: int, body: bytes) -> str:
    """Plano's error for a non-2xx router answer: `Upstream returned <status>: <message>`."""
    return f"Upstream returned {status}: {upstream_error_message(body)}"


def _loads(text: str, what: str) -> Any:
    """Strict JSON as serde_json reads it: no NaN/Infinity, no repeated keys; depth errors are typed."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise RouterReplyError(f"{what}: nested too deeply") from None
    except ValueError as error:
        raise RouterReplyError(f"{what}: {error}") from None


_FIELDS = frozenset(("choices", "message", "content", "route", "error", "param", "type"))
"""Keys read into typed fields, which serde refuses to see twice (other repeated keys it ignores)."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen and key in _FIELDS:
                raise ValueError(f"duplicate field {key!r}")
            seen.add(key)
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end].decode("utf-8", "surrogatepass")
