"""Where the CLI finds the service: flags, then the environment, then a config file."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
ENV_URL = "CERTUS_ASSURANCE_URL"
ENV_KEY = "CERTUS_ASSURANCE_API_KEY"
ENV_CONFIG = "CERTUS_ASSURANCE_CONFIG"


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class ClientConfig:
    url: str
    api_key: str | None
    timeout: float


def config_path() -> Path:
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "certus-assurance" / "config.toml"


def _read_file(path: Path, required: bool) -> dict[str, object]:
    if not path.is_file():
        if required:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc


def resolve(url: str | None, api_key: str | None, config: str | None, timeout: float) -> ClientConfig:
    path = Path(config) if config else config_path()
    data = _read_file(path, required=bool(config or os.environ.get(ENV_CONFIG)))
    file_url = data.get("url")
    file_key = data.get("api_key")
    final_url = url or os.environ.get(ENV_URL) or (file_url if isinstance(file_url, str) else None) or DEFAULT_URL
    final_key = api_key or os.environ.get(ENV_KEY) or (file_key if isinstance(file_key, str) else None)
    if not final_url.startswith(("http://", "https://")):
        raise ConfigError(f"the service URL must start with http:// or https:// (got {final_url!r})")
    return ClientConfig(url=final_url.rstrip("/"), api_key=final_key or None, timeout=timeout)
