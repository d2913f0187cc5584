"""Settings, read once at the composition root from flags and `CFP_*` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    "gcp_project": "CFP_GCP_PROJECT",
    "region": "CFP_REGION",
    "firestore_database": "CFP_FIRESTORE_DATABASE",
    "bucket": "CFP_BUCKET",
    "kms_keyring": "CFP_KMS_KEYRING",
    "payload_inline_limit": "CFP_PAYLOAD_INLINE_LIMIT",
    "function_url": "CFP_FUNCTION_URL",
    "tasks_queue": "CFP_TASKS_QUEUE",
    "tasks_service_account": "CFP_TASKS_SERVICE_ACCOUNT",
    "password_profile": "CFP_PASSWORD_PROFILE",
    "bootstrap_admin_email": "CFP_BOOTSTRAP_ADMIN_EMAIL",
    "bootstrap_admin_password": "CFP_BOOTSTRAP_ADMIN_PASSWORD",
    "audit_anchor_dir": "CFP_AUDIT_ANCHOR_DIR",
    "audit_anchor_bucket": "CFP_AUDIT_ANCHOR_BUCKET",
    "tsa_url": "CFP_TSA_URL",
    "audit_checkpoint_seconds": "CFP_AUDIT_CHECKPOINT_SECONDS",
    "audit_checkpoint_records": "CFP_AUDIT_CHECKPOINT_RECORDS",
    "retention_purge_seconds": "CFP_RETENTION_PURGE_SECONDS",
    "diagnostics": "CFP_DIAGNOSTICS",
    "web_dir": "CFP_WEB_DIR",
    # where the Google clients find the emulators (the names the Google libraries use)
    "firestore_emulator_host": "FIRESTORE_EMULATOR_HOST",
    "pubsub_emulator_host": "PUBSUB_EMULATOR_HOST",
    "storage_emulator_host": "STORAGE_EMULATOR_HOST",
    "tasks_emulator_host": "CFP_TASKS_EMULATOR_HOST",
    "firebase_auth_emulator_host": "FIREBASE_AUTH_EMULATOR_HOST",
}

# Google-only settings: refused with the local backend. CFP_REGION is not among them: every
# deployment, the embedded one included, has a region for tenant residency (default "local").
GOOGLE_SETTINGS = (
    "gcp_project",
    "firestore_database",
    "bucket",
    "kms_keyring",
    "audit_anchor_bucket",
)
EMULATOR_PROJECT = "cfp-local"
EMULATOR_REGION = "us-central1"
EMULATOR_BUCKET = "cfp-local"


class Settings(BaseModel):
    """Everything the platform can be told; defaults are the embedded developer setup."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["local", "emulators", "gcp"] = "local"
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
    # Google Cloud (backends `emulators` and `gcp`)
    gcp_project: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    region: str | None = Field(default=None, pattern=r"^([a-z]+(-[a-z]+)+[0-9]+|local)$")
    firestore_database: str | None = Field(
        default=None, pattern=r"^(\(default\)|[a-z][a-z0-9-]{2,61}[a-z0-9])$"
    )
    bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
    kms_keyring: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,63}$")
    payload_inline_limit: int = Field(default=256 * 1024, gt=0, le=9 * 1024 * 1024)
    # A Cloud Run function's own URL: delays and retries of pushed events come back to it as
    # tasks on the queue `tasks_queue` (default cfp-{tenant}-{project}-{env}), with an OIDC token of
    # `tasks_service_account` when set (Cloud Run's invoker check).
    function_url: str | None = Field(default=None, pattern=r"^https?://")
    tasks_queue: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,100}$")
    tasks_service_account: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    # Identity: Argon2id with OWASP's parameters; `test` is a cheap profile for test suites only.
    password_profile: Literal["owasp", "test"] = "owasp"
    bootstrap_admin_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    bootstrap_admin_password: str | None = Field(default=None, repr=False)
    # Audit checkpoints: where they are anchored outside the platform's store (a directory
    # locally, default beside the data dir; a retention-locked bucket on Google Cloud), an
    # RFC 3161 Time-Stamp Authority, and how often they are made.
    audit_anchor_dir: Path | None = None
    audit_anchor_bucket: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$"
    )
    tsa_url: str | None = Field(default=None, pattern=r"^https?://")
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0)
    audit_checkpoint_records: int = Field(default=1000, ge=1)
    # How often a long-running process applies the tenants' retention periods.
    retention_purge_seconds: float = Field(default=3600.0, gt=0)
    # The diagnostic endpoint (R/diagnostics): off unless enabled; each use is audited.
    diagnostics: bool = False
    # The workbench's built files (web/dist), served at `/`; default: the repository's build.
    web_dir: Path | None = None
    firestore_emulator_host: str | None = None
    pubsub_emulator_host: str | None = None
    storage_emulator_host: str | None = None
    tasks_emulator_host: str | None = None
    # The Firebase Auth emulator (host:port): its ID tokens are accepted, on any backend but gcp.
    firebase_auth_emulator_host: str | None = Field(default=None, pattern=r"^[^/\s]+:[0-9]+$")

    @model_validator(mode="after")
    def _backend_settings(self) -> Settings:
        """The Google settings a backend needs are present, and none is set for `local`."""
        if self.backend == "local":
            given = [ENV_NAMES[n] for n in GOOGLE_SETTINGS if getattr(self, n) is not None]
            if given:
                raise SettingsError(
                    f"{', '.join(given)} set but CFP_BACKEND / --backend is local, which uses no "
                    "Google service: choose --backend emulators or gcp, or unset them",
                    details={"settings": given},
                )
        if self.backend == "gcp" and self.region == "local":
            raise SettingsError(
                "CFP_REGION=local names the embedded deployment; --backend gcp needs a Google "
                "Cloud region such as europe-west4",
                details={"settings": ["CFP_REGION"]},
            )
        if self.backend == "gcp":
            missing = [
                ENV_NAMES[n]
                for n in ("gcp_project", "region", "bucket", "kms_keyring")
                if getattr(self, n) is None
            ]
            if missing:
                raise SettingsError(
                    f"--backend gcp needs {', '.join(missing)} (see docs/gcp.md)",
                    details={"missing": missing},
                )
            emulated = [
                ENV_NAMES[n]
                for n in (
                    "firestore_emulator_host",
                    "pubsub_emulator_host",
                    "storage_emulator_host",
                    "tasks_emulator_host",
                    "firebase_auth_emulator_host",
                )
                if getattr(self, n)
            ]
            if emulated:
                raise SettingsError(
                    f"--backend gcp talks to Google Cloud, but {', '.join(emulated)} point the "
                    "clients at emulators: unset them, or use --backend emulators",
                    details={"settings": emulated},
                )
        return self

    @model_validator(mode="after")
    def _anchors_outside_the_data_dir(self) -> Settings:
        if self.audit_anchor_dir is not None:
            anchors = Path(self.audit_anchor_dir).resolve()
            data = Path(self.data_dir).resolve()
            if anchors == data or anchors.is_relative_to(data):
                raise SettingsError(
                    f"CFP_AUDIT_ANCHOR_DIR ({anchors}) is inside the data dir ({data}): anchors "
                    "must live outside the store they vouch for",
                    details={"settings": ["CFP_AUDIT_ANCHOR_DIR"]},
                )
        return self

    @property
    def anchor_dir(self) -> Path:
        """Where local checkpoints are anchored: CFP_AUDIT_ANCHOR_DIR, else the directory
        `<data dir>-audit-anchors` beside the data dir."""
        if self.audit_anchor_dir is not None:
            return Path(self.audit_anchor_dir)
        data = Path(self.data_dir).resolve()
        return data.parent / f"{data.name}-audit-anchors"

    @property
    def web_build(self) -> Path:
        """Where the built workbench is: CFP_WEB_DIR, else web/dist beside the package."""
        if self.web_dir is not None:
            return Path(self.web_dir)
        return Path(__file__).resolve().parents[2] / "web" / "dist"

    @property
    def anchor_bucket(self) -> str:
        """The retention-locked bucket of the checkpoints' anchors on Google Cloud."""
        return self.audit_anchor_bucket or f"{self.bucket_name}-audit-anchors"[:63]

    @property
    def google_project(self) -> str:
        return self.gcp_project or EMULATOR_PROJECT

    @property
    def google_region(self) -> str:
        return self.region if self.region and self.region != "local" else EMULATOR_REGION

    @property
    def deployment_region(self) -> str:
        """This deployment's region, for tenant residency: CFP_REGION, else `local` on the
        embedded backend and the emulators' region on the others."""
        if self.region:
            return self.region
        return "local" if self.backend == "local" else EMULATOR_REGION

    @property
    def database(self) -> str:
        """One named Firestore database per region: `cfp-{region}` unless set."""
        return self.firestore_database or f"cfp-{self.google_region}"

    @property
    def bucket_name(self) -> str:
        return self.bucket or f"{self.google_project}-{self.google_region}-cfp"

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
