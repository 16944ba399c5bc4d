"""The HTTP API of the host: control plane, run gateway and MCP tool servers."""
