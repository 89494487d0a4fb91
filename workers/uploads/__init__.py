"""Publishing a finished scan: the Trust gate, S3 raw -> golden promotion and the OCI registry."""
