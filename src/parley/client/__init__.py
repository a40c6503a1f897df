"""The terminal client: `parley client ...` (REST for commands, WebSocket for `watch`)."""
