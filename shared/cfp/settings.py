"""Settings, read once at the composition root from flags and `CFP_*` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cfp.errors import SettingsError

ENV_NAMES: dict[str, str] = {
    "backend": "CFP_BACKEND",
    "project_dir": "CFP_PROJECT",
    "project_name": "CFP_NAME",
    "env": "CFP_ENV",
    "host": "CFP_HOST",
    "port": "CFP_PORT",
    "data_dir": "CFP_DATA_DIR",
    "validation_mode": "CFP_VALIDATION_MODE",
    "max_body_bytes": "CFP_MAX_BODY_BYTES",
    "retry_base_seconds": "CFP_RETRY_BASE_SECONDS",
    "poll_seconds": "CFP_POLL_SECONDS",
    "log_level": "CFP_LOG_LEVEL",
    "tenant": "CFP_TENANT",
    "step": "CFP_STEP",
    "build_dir": "CFP_BUILD_DIR",
    "sqlite_synchronous": "CFP_SQLITE_SYNCHRONOUS",
}


class Settings(BaseModel):
    """Everything the platform can be told; defaults are the embedded developer setup."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["local"] = "local"
    project_dir: Path | None = None
    project_name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    env: str = Field(default="dev", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path(".cfp")
    validation_mode: Literal["strict", "permissive"] = "permissive"
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    retry_base_seconds: float = Field(default=1.0, ge=0)
    poll_seconds: float = Field(default=0.25, gt=0)
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    tenant: str = "local"
    step: str | None = None
    build_dir: Path = Path("build")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Environment first, flags (non-None overrides) on top; errors name the setting."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in ENV_NAMES.items():
            if environ.get(var, "") != "":
                values[name] = environ[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                name = str(err["loc"][0]) if err["loc"] else "?"
                where = f"--{name.replace('_', '-')} / {ENV_NAMES.get(name, name)}"
                problems.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
            raise SettingsError(
                "invalid settings: " + "; ".join(problems), details=problems
            ) from None
