"""The phases of a scan after the source is in place: manifest, tools, policy."""
