"""The answer to bytes that are not an HTTP/1.1 request, in the error JSON a client's SDK reads.

h11 refuses a request whose framing is broken before any request exists for
the gateway to answer: a malformed request line or header, a bad chunk size or
chunk end, a Transfer-Encoding other than chunked, a head past its size bound.
hypercorn, and the overflow lane (which parses with h11 too), answered those
with the bare status and an empty body, which an SDK reports as "Error code:
400" and nothing else.  `framing_error` turns h11's refusal into an `ApiError`
with the same status and a message that says what was wrong; the caller renders
it in OpenAI's shape, or in Anthropic's when the request line had already named
`/v1/messages` (often nothing of the request could be read, and OpenAI's shape
is the default every other edge uses).

Pure: the two edges that send it are `server.connection` and `server.overflow`.
"""

from __future__ import annotations

import h11

from plano_trio.gateway.errors import ApiError, head_too_large

DETAIL_CHARS = 200
"""h11's own description of the fault can quote the client's bytes (an illegal header name, a chunk's
end); this much of it is enough to find the fault, and the answer stays small whatever was sent."""

CONTENT_TYPE = (b"content-type", b"application/json")


def framing_error(error: h11.ProtocolError, head_limit: int) -> ApiError:
    """The answer to h11's refusal `error`, with h11's status hint (400, 431 or 501).

    `head_limit` is the bound in bytes on a request head, named in the 431 message so the client knows
    what to cut."""
    status = error.error_status_hint
    detail = str(error)
    if len(detail) > DETAIL_CHARS:
        detail = detail[:DETAIL_CHARS] + "..."
    if status == 431:
        return head_too_large(head_limit)
    if status == 501:
        return ApiError(
            501,
            f"The request's framing is not supported ({detail}); send the body with Content-Length "
            "or Transfer-Encoding: chunked",
            code="unsupported_transfer_encoding",
        )
    return ApiError(status, f"The request is not valid HTTP/1.1: {detail}", code="malformed_http_request")
