"""Parley: a self-hostable real-time chat server with background jobs."""

__version__ = "0.1.0"
