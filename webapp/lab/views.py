"""Pages. Function views, thin: they call selectors and services and render."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

import patterns

from . import services
from .catalog import catalog, is_live
from .selectors import OWNER, sim_for_kind, sim_role


def _error(request: HttpRequest, title: str, message: str, status: int) -> HttpResponse:
    return render(request, "lab/error.html", {"title": title, "message": message}, status=status)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "lab/home.html", {"patterns": catalog()})


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


@require_GET
def start(request: HttpRequest, kind: str) -> HttpResponse:
    """Open the learner's simulation of this kind, creating one the first time."""
    if not is_live(kind):
        return _error(request, "Not built yet", f"The {kind} lab is not live yet. Pick a live one from the catalog.", 404)
    sim_id = sim_for_kind(session=request.session, kind=kind)
    if sim_id is None:
        return _create(request, kind)
    return redirect("lab:sim", kind=kind, sim_id=sim_id)


@require_POST
def new(request: HttpRequest, kind: str) -> HttpResponse:
    """Start a fresh simulation of this kind (the old one keeps its own link)."""
    if not is_live(kind):
        return _error(request, "Not built yet", f"The {kind} lab is not live yet.", 404)
    return _create(request, kind)


def _create(request: HttpRequest, kind: str) -> HttpResponse:
    try:
        sim_id = services.sim_create(session=request.session, kind=kind)
    except services.CapReached as exc:
        return _error(request, "Too many simulations", str(exc), 429)
    except patterns.PatternsError as exc:
        return _error(request, "Could not start the simulation", str(exc), 400)
    return redirect("lab:sim", kind=kind, sim_id=sim_id)


@require_GET
def sim(request: HttpRequest, kind: str, sim_id: str) -> HttpResponse:
    watch = request.GET.get("watch")
    role, meta = sim_role(session=request.session, sim_id=sim_id, watch=watch)
    if role is None or meta.get("kind") != kind:
        return _error(
            request,
            "Simulation not found",
            "This simulation does not exist any more, or this link does not grant access to it. "
            "Start your own from the catalog.",
            404,
        )
    ws_path = f"/ws/sim/{sim_id}/"
    if role != OWNER:
        ws_path += f"?watch={meta['share']}"
    share_url = request.build_absolute_uri(reverse("lab:sim", args=[kind, sim_id])) + f"?watch={meta['share']}"
    config = {
        "sim_id": sim_id,
        "ws_path": ws_path,
        "role": role,
        "share_url": share_url if role == OWNER else "",
        "seed": int(meta["seed"]),
        "kind": kind,
    }
    return render(request, f"lab/{kind}.html", {**config, "config": config})


@require_POST
def close(request: HttpRequest, kind: str, sim_id: str) -> HttpResponse:
    services.sim_close(session=request.session, sim_id=sim_id)
    return redirect("lab:home")
