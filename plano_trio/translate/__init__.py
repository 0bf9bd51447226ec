"""Pure translation between the wire APIs, with OpenAI Chat as the pivot.

Module names say which side of the gateway they serve:

* `client_<api>` — a client speaking `<api>` in front of the Chat pivot:
  the client's request → Chat, Chat's answer → the client's API
  (`client_messages`, `client_responses`, `client_responses_stream`);
* `upstream_<api>` — the Chat pivot in front of a provider speaking `<api>`:
  Chat → the provider's request, the provider's answer → Chat
  (`upstream_messages`, `upstream_bedrock`).

Function and class names say which way the data flows, `<from>_<what>_to_<to>`
and `<From>StreamTo<To>`: `upstream_messages.messages_response_to_chat`
reads an Anthropic provider's response, `client_messages.ChatStreamToMessages`
writes an Anthropic client's stream.  `matrix.plan_for` assembles a pair;
`base` holds the shared shapes and the error contract.  The gateway imports
`base` and `matrix` (and the SSE/event-stream framing), nothing else.
"""
