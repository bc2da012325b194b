"""The gateway as an OAuth 2 authorization server (authlib), for ChatGPT Actions and MCP."""
