"""Filter chains: request and response bodies through operator-configured HTTP and MCP filters."""
