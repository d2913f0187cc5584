"""API step routes: Express-style paths (`/users/:id`) compiled once, matched, and compared."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")

_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
# Express reads these characters as route syntax (optional params, wildcards, regex groups);
# classic Motia projects use plain `:param` segments only, so anything else is refused rather
# than silently matched as literal text.
_SYNTAX = re.compile(r"[:*?+(){}\[\]]")


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """A compiled API route: literal segments and whole-segment `:param` placeholders."""

    path: str
    method: str
    param_names: list[str]
    segments: tuple[str | None, ...] = field(repr=False)  # None marks a parameter segment

    @property
    def starlette_path(self) -> str:
        """The same route in Starlette's syntax: `/users/{id}`."""
        parts = iter(self.param_names)
        return "/" + "/".join(
            "{" + next(parts) + "}" if seg is None else seg for seg in self.segments
        )

    @property
    def shape(self) -> str:
        """Method and path with parameter names erased: two routes with one shape collide."""
        return self.method + " /" + "/".join(":" if seg is None else seg for seg in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Parameters if `path` (as the server decoded it) matches this route, else None."""
        parts = _split(path)
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        names = iter(self.param_names)
        for want, got in zip(self.segments, parts, strict=True):
            if want is None:
                if not got:
                    return None
                params[next(names)] = got
            elif want != got:
                return None
        return params


def _split(path: str) -> list[str]:
    # Express's default (non-strict) routing treats `/users` and `/users/` as the same route.
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def compile_route(method: str, path: str) -> RoutePattern:
    """Compile an API step's method and Express-style path; ValueError says what is wrong."""
    if method not in HTTP_METHODS:
        raise ValueError(f"method must be one of {', '.join(HTTP_METHODS)}, not {method!r}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    if "//" in path:
        raise ValueError(f"path {path!r} has an empty segment")
    segments: list[str | None] = []
    names: list[str] = []
    for seg in _split(path):
        param = _PARAM.fullmatch(seg)
        if param:
            if param.group(1) in names:
                raise ValueError(f"path {path!r} repeats parameter :{param.group(1)}")
            names.append(param.group(1))
            segments.append(None)
        elif _SYNTAX.search(seg):
            raise ValueError(
                f"path segment {seg!r} in {path!r} is not supported: use literal text or a "
                "whole-segment parameter like ':id'"
            )
        else:
            segments.append(seg)
    return RoutePattern(path=path, method=method, param_names=names, segments=tuple(segments))
