"""The dashboard and API in one starlette app: pages at ``/``, the API under ``/api``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ctstatus.api.app import EXCEPTION_HANDLERS, api_routes
from ctstatus.api.service import parse_serial
from ctstatus.web import charts
from ctstatus.web.context import DashboardContext

STATIC = Path(__file__).parent / "static"
STATE_ORDER = ["reserved", "precert_signed", "issued", "abandoned", "revoked", "never_signed"]


def _ago(value: float | str | None) -> str:
    if value is None:
        return "—"
    when = (
        datetime.fromisoformat(value)
        if isinstance(value, str)
        else datetime.fromtimestamp(value, UTC)
    )
    seconds = int((datetime.now(UTC) - when).total_seconds())
    if seconds < 90:
        return f"{seconds}s ago"
    if seconds < 5400:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _when(value: float | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ctstatus.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ago"] = _ago
    env.filters["when"] = _when
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    env.globals["STATE_ORDER"] = STATE_ORDER
    return env


class Dashboard:
    def __init__(self, context: DashboardContext) -> None:
        self.context = context
        self.env = environment()

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        template = self.env.get_template(name)
        html = template.render(demo=self.context.demo, **values)
        return HTMLResponse(html, status_code=status)

    async def overview(self, request: Request) -> Response:
        data = await self.context.overview()
        charts_svg = {
            "issuance": charts.bars(
                [("issued", data["issued"]), ("abandoned", data["abandoned"])],
                data["minutes"],
                title="certificates issued and precertificates abandoned per minute",
            ),
            "latency": charts.line(data["latency_series"], unit=" ms", title="OCSP p95 latency"),
            "rate": charts.line(data["rate_series"], unit="/s", title="OCSP requests per second"),
            "problems": charts.line(
                data["problem_series"], color="var(--bad)", title="open problems"
            ),
        }
        return self.render("overview.html", page="overview", data=data, charts=charts_svg)

    async def problems(self, request: Request) -> Response:
        problems = await self.context.problems()
        cas = sorted({p["ca"] for p in problems})
        codes = sorted({p["code"] for p in problems})
        per_ca = {
            ca: {
                "open": sum(1 for p in problems if p["ca"] == ca and not p["resolved_at"]),
                "resolved": sum(1 for p in problems if p["ca"] == ca and p["resolved_at"]),
            }
            for ca in cas
        }
        return self.render(
            "problems.html",
            page="problems",
            problems=problems,
            cas=cas,
            codes=codes,
            per_ca=per_ca,
        )

    async def lookup(self, request: Request) -> Response:
        query = request.query_params.get("q", "").strip()
        if not query:
            return self.render("serial.html", page="serial", query="", result=None, error=None)
        serial = None if "." in query else parse_serial(query)
        if serial is not None:
            return RedirectResponse(f"/serial/{serial:x}", status_code=303)
        if "." not in query or len(query) > 253 or " " in query:
            return self.render(
                "serial.html",
                status=400,
                page="serial",
                query=query,
                result=None,
                error=f"{query!r} is not a serial number (hex) nor a DNS name",
            )
        found = await self.context.search_names(query)
        return self.render(
            "serial.html",
            status=200 if found else 404,
            page="serial",
            query=query,
            result=None,
            found=found,
            error=None
            if found
            else f"no certificate of {self.context.backend.issuer_name} names {query!r}",
        )

    async def serial(self, request: Request) -> Response:
        text = request.path_params["serial"]
        serial = parse_serial(text)
        result = None if serial is None else await self.context.serial(serial)
        error = None
        if serial is None:
            error = f"{text!r} is not a serial number"
        elif result is None:
            error = f"{self.context.backend.issuer_name} has no serial {serial:x}"
        return self.render(
            "serial.html",
            status=200 if result else 404,
            page="serial",
            query=text,
            result=result,
            error=error,
        )

    async def health(self, request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")


def web_app(context: DashboardContext, token_hash: str) -> Starlette:
    """The dashboard pages, their static assets, and the issuance API."""
    dashboard = Dashboard(context)
    routes = [
        Route("/", dashboard.overview),
        Route("/problems", dashboard.problems),
        Route("/serial", dashboard.lookup),
        Route("/serial/{serial}", dashboard.serial),
        Route("/healthz", dashboard.health),
        *api_routes(context.backend, token_hash),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
