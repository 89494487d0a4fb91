"""The engine: pipeline phases, scanner adapters, signing and publishers. Never imports Flask."""
