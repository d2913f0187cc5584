"""The flow graph: steps as nodes, topics as edges, as the workbench and `cfp flows` show them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from cfp.domain.steps import EmitSpec


class FlowStep(Protocol):
    """What the graph needs of a step; the loader's `StepDef` provides it."""

    name: str
    type: str
    file: str
    description: str | None
    flows: list[str]
    emits: list[EmitSpec]
    subscribes: list[str]
    virtual_emits: list[EmitSpec]
    virtual_subscribes: list[str]
    config: Any


def _emit_dict(spec: EmitSpec) -> dict[str, Any]:
    return {"topic": spec.topic, "label": spec.label, "conditional": spec.conditional}


def _node(step: FlowStep) -> dict[str, Any]:
    return {
        "id": step.name,
        "name": step.name,
        "type": step.type,
        "file": step.file,
        "description": step.description,
        "subscribes": list(step.subscribes),
        "emits": [_emit_dict(e) for e in step.emits],
        "virtualEmits": [_emit_dict(e) for e in step.virtual_emits],
        "virtualSubscribes": list(step.virtual_subscribes),
        "path": getattr(step.config, "path", None),
        "method": getattr(step.config, "method", None),
        "cron": getattr(step.config, "cron", None),
    }


def _edges(members: list[FlowStep]) -> list[dict[str, Any]]:
    edges: dict[str, dict[str, Any]] = {}
    for source in members:
        outgoing = [(e, False) for e in source.emits] + [(e, True) for e in source.virtual_emits]
        for spec, virtual_emit in outgoing:
            for target in members:
                # Only emits -> subscribes is a real delivery; any virtual end makes the edge a
                # drawing aid, which the workbench shows dashed.
                if spec.topic in target.subscribes:
                    virtual = virtual_emit
                elif spec.topic in target.virtual_subscribes:
                    virtual = True
                else:
                    continue
                edge_id = f"{source.name}|{spec.topic}|{target.name}" + ("|virtual" * virtual)
                edges.setdefault(
                    edge_id,
                    {
                        "id": edge_id,
                        "source": source.name,
                        "target": target.name,
                        "topic": spec.topic,
                        "label": spec.label,
                        "conditional": spec.conditional,
                        "virtual": virtual,
                    },
                )
    return list(edges.values())


def build_flows(steps: Iterable[FlowStep]) -> dict[str, dict]:
    """Flow name -> `{"name", "nodes", "edges"}`; a step in several flows appears in each."""
    members: dict[str, list[FlowStep]] = {}
    for step in steps:
        for flow in step.flows:
            members.setdefault(flow, []).append(step)
    return {
        name: {
            "name": name,
            "nodes": [_node(s) for s in members[name]],
            "edges": _edges(members[name]),
        }
        for name in sorted(members)
    }


def topic_warnings(steps: Iterable[FlowStep]) -> list[dict[str, Any]]:
    """Warnings for topics emitted that nobody subscribes to and subscriptions nobody emits."""
    steps = list(steps)
    emitted = {e.topic for s in steps for e in [*s.emits, *s.virtual_emits]}
    subscribed = {t for s in steps for t in [*s.subscribes, *s.virtual_subscribes]}
    warnings = []
    for step in steps:
        for key, specs in (
            ("config.emits", step.emits),
            ("config.virtualEmits", step.virtual_emits),
        ):
            for spec in specs:
                if spec.topic not in subscribed:
                    warnings.append(
                        {
                            "file": step.file,
                            "key": key,
                            "message": f"topic {spec.topic!r} is emitted but no step subscribes "
                            "to it",
                        }
                    )
        for key, topics in (
            ("config.subscribes", step.subscribes),
            ("config.virtualSubscribes", step.virtual_subscribes),
        ):
            for topic in topics:
                if topic not in emitted:
                    warnings.append(
                        {
                            "file": step.file,
                            "key": key,
                            "message": f"topic {topic!r} is subscribed to but no step emits it",
                        }
                    )
    return warnings


_SHAPES = {
    "api": ('(["', '"])'),
    "event": ('["', '"]'),
    "cron": ('(("', '"))'),
    "noop": ('{{"', '"}}'),
}


def _mermaid_text(text: str) -> str:
    # Mermaid ends a quoted label at `"`; its entity form keeps the text intact.
    return text.replace('"', "#quot;")


def to_mermaid(flow: dict) -> str:
    """A Mermaid flowchart of one flow from `build_flows`: real edges solid, virtual dashed."""
    ids: dict[str, str] = {}
    for node in flow["nodes"]:
        # Mermaid ids must be plain words, and a few (`end`, `graph`) are keywords: prefix them.
        base = "s_" + re.sub(r"\W", "_", node["id"], flags=re.ASCII)
        candidate, n = base, 1
        while candidate in ids.values():
            n += 1
            candidate = f"{base}_{n}"
        ids[node["id"]] = candidate
    lines = ["flowchart LR"]
    for node in flow["nodes"]:
        label = node["name"]
        if node["type"] == "api" and node.get("path"):
            label = f"{node['method']} {node['path']}<br/>{label}"
        elif node["type"] == "cron" and node.get("cron"):
            label = f"{label}<br/>{node['cron']}"
        opening, closing = _SHAPES.get(node["type"], _SHAPES["event"])
        lines.append(f"    {ids[node['id']]}{opening}{_mermaid_text(label)}{closing}")
    for edge in flow["edges"]:
        text = edge["label"] or edge["topic"]
        if edge["conditional"]:
            text += " (conditional)"
        arrow = "-.->" if edge["virtual"] else "-->"
        lines.append(
            f'    {ids[edge["source"]]} {arrow}|"{_mermaid_text(text)}"| {ids[edge["target"]]}'
        )
    return "\n".join(lines) + "\n"
