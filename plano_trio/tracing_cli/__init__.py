"""The trace viewer in the CLI: `plano-trio trace listen` (an OTLP receiver keeping recent traces in memory)
and `plano-trio trace [last|any|ID]` (a span tree, or JSON, of what the listener holds).

It speaks the same protocol as Plano's `planoai trace`, so either viewer reads either listener:
spans arrive over OTLP (gRPC, optionally HTTP/protobuf), the viewer asks the listener over gRPC
(`/plano.TraceQuery/GetTraces`, an empty request answered with JSON `{"traces": [...]}`) at
127.0.0.1:`PLANO_TRACE_PORT`.

Modules: `spans` (the JSON shape), `otlp` (OTLP protobuf to that shape, bounded), `store` (recent traces,
bounded), `query` (the command line's selection language), `render` (the span tree as text) are pure;
`listener` and `viewer` do the I/O; `command` wires them to argparse.
"""
