"""Signing: the service's cosign-compatible key pair, DSSE envelopes and in-toto statements.

Everything here is plain Python (``cryptography`` for ECDSA P-256, PyNaCl for the secretbox that
encrypts ``cosign.key``), so signatures made here verify with stock ``cosign`` and the other way round.
"""
