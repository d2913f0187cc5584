"""Tenants, teams, projects, environments, members, role bindings and service accounts: their wire
shapes and the rules on them, without I/O. Every tenant-owned document lives under
`tenants/{tenant}/…`; `TenantPaths` is the only way to build those paths."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cfp.domain.documents import doc_id

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
REGION = r"^[a-z]+(-[a-z]+)*[0-9]*$"
TenantStatus = Literal["active", "suspended", "deleted"]
MemberStatus = Literal["invited", "active", "disabled"]


def slugify(name: str) -> str:
    """A slug from a display name: lower-case letters, digits and single hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:63].rstrip("-") or "x"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- tenants ------------------------------------------------------------------------------------


class TenantIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    region: str = Field(pattern=REGION, max_length=40)
    id: str | None = Field(default=None, pattern=SLUG, description="Default: from the name")


class TenantPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    status: Literal["active", "suspended"] | None = None


class Tenant(BaseModel):
    id: str
    name: str
    region: str
    status: TenantStatus
    kms_key_id: str
    created_at: str
    updated_at: str
    version: int


# -- teams, projects, environments -------------------------------------------------------------


class TeamIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    lead_user_id: str | None = Field(default=None, max_length=200)


class TeamPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    lead_user_id: str | None = Field(default=None, max_length=200)


class Team(BaseModel):
    id: str
    name: str
    lead_user_id: str | None
    created_at: str
    updated_at: str
    version: int


class ProjectIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    slug: str | None = Field(default=None, pattern=SLUG, description="Default: from the name")
    team_id: str | None = Field(default=None, max_length=200)


class ProjectPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    team_id: str | None = Field(default=None, max_length=200)


class Project(BaseModel):
    id: str
    slug: str
    name: str
    team_id: str | None
    created_at: str
    updated_at: str
    version: int


class EnvIn(Strict):
    name: str = Field(pattern=SLUG, description="dev, staging, prod, or any slug")


class Env(BaseModel):
    name: str
    project: str
    created_at: str


@dataclass(frozen=True, slots=True)
class TenantPaths:
    """Document paths of one tenant; nothing else builds `tenants/{t}/…` for the control plane."""

    tenant: str

    @property
    def root(self) -> str:
        return f"tenants/{doc_id(self.tenant)}"

    def teams(self) -> str:
        return f"{self.root}/teams"

    def team(self, team: str) -> str:
        return f"{self.teams()}/{doc_id(team)}"

    def projects(self) -> str:
        return f"{self.root}/projects"

    def project(self, project: str) -> str:
        return f"{self.projects()}/{doc_id(project)}"

    def envs(self, project: str) -> str:
        return f"{self.project(project)}/envs"

    def env(self, project: str, env: str) -> str:
        return f"{self.envs(project)}/{doc_id(env)}"

    def members(self) -> str:
        return f"{self.root}/members"

    def member(self, principal: str) -> str:
        return f"{self.members()}/{doc_id(principal)}"

    def service_accounts(self) -> str:
        return f"{self.root}/service_accounts"

    def service_account(self, account: str) -> str:
        return f"{self.service_accounts()}/{doc_id(account)}"


def tenant_path(tenant: str) -> str:
    return f"tenants/{doc_id(tenant)}"


def directory_path(tenant: str) -> str:
    """The global directory entry tenant → region, for residency routing."""
    return f"tenant_directory/{doc_id(tenant)}"
