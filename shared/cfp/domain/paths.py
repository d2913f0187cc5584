"""Where documents live: every path is built from a scope, so no code can reach another
tenant's or project's documents by forgetting a check."""

from __future__ import annotations

from dataclasses import dataclass

from cfp.domain.documents import doc_id

LOCAL_TENANT = "local"


@dataclass(frozen=True, slots=True)
class Scope:
    """A project environment of a tenant: `tenants/{t}/projects/{p}/envs/{e}`."""

    tenant: str
    project: str
    env: str

    @property
    def root(self) -> str:
        return (
            f"tenants/{doc_id(self.tenant)}/projects/{doc_id(self.project)}/envs/{doc_id(self.env)}"
        )

    def state_groups(self) -> str:
        return f"{self.root}/state"

    def state_group(self, group: str) -> str:
        return f"{self.root}/state/{doc_id(group)}"

    def state_items(self, group: str) -> str:
        return f"{self.state_group(group)}/items"

    def state_item(self, group: str, key: str) -> str:
        return f"{self.state_items(group)}/{doc_id(key)}"

    def stream_items(self, stream: str, group: str) -> str:
        return f"{self.root}/streams/{doc_id(stream)}/groups/{doc_id(group)}/items"

    def stream_item(self, stream: str, group: str, item: str) -> str:
        return f"{self.stream_items(stream, group)}/{doc_id(item)}"

    def executions(self) -> str:
        return f"{self.root}/executions"

    def traces(self) -> str:
        return f"{self.root}/traces"

    def logs(self) -> str:
        return f"{self.root}/logs"

    def settings(self) -> str:
        return f"{self.root}/config/settings"

    def flow_layout(self, flow: str) -> str:
        """A flow's saved canvas layout (the workbench's node positions and viewport)."""
        return f"{self.root}/flow_layouts/{doc_id(flow)}"
