from dataclasses import dataclass, field
from typing import Any

from cfp.domain.flows import build_flows, to_mermaid, topic_warnings
from cfp.domain.steps import EmitSpec, parse_step_config


@dataclass
class Step:
    name: str
    type: str = "event"
    flows: list[str] = field(default_factory=lambda: ["f"])
    emits: list[EmitSpec] = field(default_factory=list)
    subscribes: list[str] = field(default_factory=list)
    virtual_emits: list[EmitSpec] = field(default_factory=list)
    virtual_subscribes: list[str] = field(default_factory=list)
    description: str | None = None
    config: Any = None

    @property
    def file(self) -> str:
        return f"steps/{self.name.lower()}_step.py"


def emits(*topics: str, **kw: Any) -> list[EmitSpec]:
    return [EmitSpec(topic=t, **kw) for t in topics]


def edges(flow: dict) -> set[tuple[str, str, str, bool]]:
    return {(e["source"], e["target"], e["topic"], e["virtual"]) for e in flow["edges"]}


def test_emits_to_subscribes_is_a_real_edge_with_label_and_condition():
    flows = build_flows(
        [
            Step("A", emits=emits("t", label="when odd", conditional=True)),
            Step("B", subscribes=["t"]),
        ]
    )

    [edge] = flows["f"]["edges"]
    assert edge == {
        "id": "A|t|B",
        "source": "A",
        "target": "B",
        "topic": "t",
        "label": "when odd",
        "conditional": True,
        "virtual": False,
    }


def test_any_virtual_end_makes_a_virtual_edge():
    flow = build_flows(
        [
            Step("Real", emits=emits("r1", "r2")),
            Step("Virt", type="noop", virtual_emits=emits("v1", "v2")),
            Step("Sub", subscribes=["r1", "v1"]),
            Step("VSub", virtual_subscribes=["r2", "v2"]),
        ]
    )["f"]

    assert edges(flow) == {
        ("Real", "Sub", "r1", False),
        ("Real", "VSub", "r2", True),
        ("Virt", "Sub", "v1", True),
        ("Virt", "VSub", "v2", True),
    }
    assert len({e["id"] for e in flow["edges"]}) == 4


def test_edges_stay_within_a_flow_and_shared_steps_appear_in_each():
    flows = build_flows(
        [
            Step("A", flows=["one"], emits=emits("t")),
            Step("B", flows=["two"], subscribes=["t"]),
            Step("Shared", flows=["one", "two"], subscribes=["t"], emits=emits("u")),
            Step("C", flows=["two"], subscribes=["u"]),
            Step("Loner", flows=[]),
        ]
    )

    assert list(flows) == ["one", "two"]
    assert [n["id"] for n in flows["one"]["nodes"]] == ["A", "Shared"]
    assert [n["id"] for n in flows["two"]["nodes"]] == ["B", "Shared", "C"]
    assert edges(flows["one"]) == {("A", "Shared", "t", False)}
    assert edges(flows["two"]) == {("Shared", "C", "u", False)}


def test_same_topic_emitted_twice_gives_one_edge():
    flow = build_flows([Step("A", emits=emits("t", "t")), Step("B", subscribes=["t"])])["f"]

    assert len(flow["edges"]) == 1


def test_nodes_carry_what_the_workbench_shows():
    api = parse_step_config(
        {"type": "api", "name": "Api", "path": "/x/:id", "method": "PUT", "flows": ["f"]}
    )
    cron = parse_step_config({"type": "cron", "name": "Tick", "cron": "0 * * * *"})
    flow = build_flows(
        [
            Step("Api", type="api", config=api, description="entry", emits=emits("t")),
            Step("Tick", type="cron", config=cron, virtual_subscribes=["v"]),
        ]
    )["f"]

    api_node, cron_node = flow["nodes"]
    assert api_node == {
        "id": "Api",
        "name": "Api",
        "type": "api",
        "file": "steps/api_step.py",
        "description": "entry",
        "subscribes": [],
        "emits": [{"topic": "t", "label": None, "conditional": False}],
        "virtualEmits": [],
        "virtualSubscribes": [],
        "path": "/x/:id",
        "method": "PUT",
        "cron": None,
    }
    assert (cron_node["cron"], cron_node["path"], cron_node["virtualSubscribes"]) == (
        "0 * * * *",
        None,
        ["v"],
    )


def test_topic_warnings_count_virtual_and_api_cron_emits():
    steps = [
        Step("Api", type="api", emits=emits("handled", "dangling")),
        Step("Cron", type="cron", emits=emits("tick")),
        Step("Noop", type="noop", virtual_emits=emits("manual"), virtual_subscribes=["tick"]),
        Step("Worker", subscribes=["handled", "manual", "orphan"], virtual_subscribes=["ghost"]),
    ]

    assert topic_warnings(steps) == [
        {
            "file": "steps/api_step.py",
            "key": "config.emits",
            "message": "topic 'dangling' is emitted but no step subscribes to it",
        },
        {
            "file": "steps/worker_step.py",
            "key": "config.subscribes",
            "message": "topic 'orphan' is subscribed to but no step emits it",
        },
        {
            "file": "steps/worker_step.py",
            "key": "config.virtualSubscribes",
            "message": "topic 'ghost' is subscribed to but no step emits it",
        },
    ]


def test_mermaid_draws_nodes_and_solid_or_dashed_edges():
    api = parse_step_config({"type": "api", "name": "Create Order", "path": "/o", "method": "POST"})
    flow = build_flows(
        [
            Step("Create Order", type="api", config=api, emits=emits("order.created")),
            Step(
                "Process",
                subscribes=["order.created"],
                emits=emits("order.failed", label='says "no"', conditional=True),
            ),
            Step("Review", type="noop", virtual_subscribes=["order.failed"]),
        ]
    )["f"]

    assert to_mermaid(flow) == (
        "flowchart LR\n"
        '    s_Create_Order(["POST /o<br/>Create Order"])\n'
        '    s_Process["Process"]\n'
        '    s_Review{{"Review"}}\n'
        '    s_Create_Order -->|"order.created"| s_Process\n'
        '    s_Process -.->|"says #quot;no#quot; (conditional)"| s_Review\n'
    )


def test_mermaid_ids_are_safe_and_unique():
    cron = parse_step_config({"type": "cron", "name": "end", "cron": "0 0 * * *"})
    flow = build_flows(
        [
            Step("end", type="cron", config=cron, emits=emits("t")),
            Step("a-b", subscribes=["t"]),
            Step("a b", subscribes=["t"]),
        ]
    )["f"]

    text = to_mermaid(flow)

    assert 's_end(("end<br/>0 0 * * *"))' in text
    assert 's_a_b["a-b"]' in text and 's_a_b_2["a b"]' in text
    assert 's_end -->|"t"| s_a_b\n' in text and 's_end -->|"t"| s_a_b_2\n' in text
