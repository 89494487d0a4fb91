"""Helpers shared by the tests: real servers on loopback and a real WebSocket client."""
