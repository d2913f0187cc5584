"""`cfp create`: a small, runnable Motia-style project to start from."""

from __future__ import annotations

from pathlib import Path

from cfp.errors import BadRequest

HELLO_API_STEP = """\
import os

from pydantic import BaseModel, Field, ValidationError


class HelloRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class HelloResponse(BaseModel):
    message: str
    traceId: str


class Problem(BaseModel):
    error: str
    details: list[dict] = []


config = {
    "type": "api",
    "name": "SayHello",
    "description": "Greets someone and tells the rest of the flow about it",
    "path": "/hello",
    "method": "POST",
    "bodySchema": HelloRequest,
    "responseSchema": {200: HelloResponse, 400: Problem},
    "emits": ["hello.said"],
    "flows": ["hello"],
}


async def handler(req, context):
    try:
        hello = HelloRequest.model_validate(req["body"])
    except ValidationError as exc:
        # In permissive validation mode (the default) an invalid body reaches the handler.
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return {"status": 400, "body": {"error": "invalid body", "details": details}}
    message = f"{os.environ.get('GREETING', 'Hello')}, {hello.name}!"
    await context.emit({"topic": "hello.said", "data": {"name": hello.name, "message": message}})
    context.logger.info("Said hello", {"name": hello.name})
    return {"status": 200, "body": {"message": message, "traceId": context.trace_id}}
"""

HELLO_EVENT_STEP = """\
from pydantic import BaseModel


class HelloSaid(BaseModel):
    name: str
    message: str


config = {
    "type": "event",
    "name": "RememberHello",
    "description": "Keeps the last greeting per name and counts them",
    "subscribes": ["hello.said"],
    "emits": [],
    "input": HelloSaid,
    "flows": ["hello"],
}


async def handler(input, context):
    hello = HelloSaid.model_validate(input)
    await context.state.set("greetings", hello.name, {"message": hello.message})
    # increment is atomic: two greetings handled at the same time both count
    count = await context.state.increment("greeting_counts", hello.name)
    greeting = {"message": hello.message, "count": count}
    context.logger.info("Remembered a greeting", {"name": hello.name, **greeting})
"""

REQUIREMENTS = """\
# Libraries your steps import, installed with `cfp install`. The runtime brings pydantic.
pydantic>=2.7
"""

ENV = """\
# Loaded into the environment when the project loads; real environment variables win.
GREETING=Hello
"""

GITIGNORE = """\
.cfp/
build/
__pycache__/
.env.local
"""

README = """\
# {name}

A CFP project: steps in `steps/`, each one file with a `config` and an `async def handler`.

- `steps/hello_api_step.py`, step SayHello (api): `POST /hello {{"name": "Ada"}}` answers a
  greeting and emits `hello.said`;
- `steps/hello_event_step.py`, step RememberHello (event): on `hello.said`, keeps the greeting
  and counts them in `greeting_counts`.

Run it:

```bash
cfp install --project .        # the libraries in requirements.txt
cfp dev --project .            # serves on http://127.0.0.1:8080 and reloads on edits
KEY=$(jq -r .api_key .cfp/dev-credentials)  # the first `cfp dev` writes it (no anonymous calls)
curl -s -X POST localhost:8080/hello -H "authorization: Bearer $KEY" \\
  -H 'content-type: application/json' -d '{{"name": "Ada"}}'
```

Then:

- `cfp flows --project . --mermaid` draws the `hello` flow;
- `cfp build --project .` validates everything and writes `build/manifest.json`, the deploy input;
- `cfp generate openapi --project .` prints the OpenAPI document of the api steps.

`.env` is read when the project loads (`GREETING` changes the greeting); real environment
variables take precedence.
"""


def scaffold(directory: Path) -> list[Path]:
    """Write a runnable two-step project into `directory`; refuses to overwrite any file."""
    directory = Path(directory)
    files = {
        "steps/hello_api_step.py": HELLO_API_STEP,
        "steps/hello_event_step.py": HELLO_EVENT_STEP,
        "requirements.txt": REQUIREMENTS,
        ".env": ENV,
        ".gitignore": GITIGNORE,
        "README.md": README.format(name=directory.resolve().name),
    }
    existing = [rel for rel in files if (directory / rel).exists()]
    if existing:
        raise BadRequest(
            f"{directory} already has {', '.join(existing)}; choose an empty directory",
            details=existing,
        )
    written = []
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
