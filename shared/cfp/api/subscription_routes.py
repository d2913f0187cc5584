"""`/v1/subscriptions`: the state of every subscription this process's steps need (pending,
active or failed with its error), and a way to retry provisioning. Thin: the subscription
lifecycle service does the work."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from cfp.api.runtime_routes import authorize_project, listing, page_args, platform
from cfp.errors import BadRequest
from cfp.services.subscriptions import STATES


async def list_subscriptions(request: Request) -> JSONResponse:
    p = await authorize_project(request, platform(request), "project.read")
    limit, cursor = page_args(request, default=100)
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        raise BadRequest(
            f"state must be one of {list(STATES)}, got {state!r}", details={"parameter": "state"}
        )
    page = await p.subscriptions.list(limit=limit, cursor=cursor)
    items = [
        {"project": p.scope.project, "env": p.scope.env, **item}
        for item in page.items
        if state is None or item["state"] == state
    ]
    return listing(items, page.next_cursor)


async def provision_subscriptions(request: Request) -> JSONResponse:
    """Run provisioning again: idempotent for active subscriptions, a retry for the rest."""
    p = await authorize_project(request, platform(request), "project.deploy")
    records = await p.subscriptions.provision(p.subscription_specs())
    failed = [r for r in records if r["state"] != "active"]
    if hasattr(p.queue, "mark_provisioned"):
        p.queue.mark_provisioned([r["name"] for r in records if r["state"] == "active"])
    items = [{"project": p.scope.project, "env": p.scope.env, **r} for r in records]
    # Provisioning is a deployment: recorded right after it (it is not the store's transaction).
    scope = p.scope
    await p.control.audit.append(
        [
            request.state.caller.entry(
                "deployment.provision",
                "env",
                f"{scope.project}/{scope.env}",
                f"tenant/{scope.tenant}/project/{scope.project}",
                outcome="failure" if failed else "success",
                details={"subscriptions": len(records), "failed": len(failed)},
            )
        ]
    )
    return JSONResponse({"items": items, "failed": len(failed)}, status_code=200)
