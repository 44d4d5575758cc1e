"""Pages and the security defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from webapp.runtime import keys

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(clean_redis) -> Client:
    return Client()


def test_home_lists_the_catalog(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Raft consensus" in html and "Sharded key-value store" in html
    assert "/lab/raft/" in html
    assert "htmx" in html and "cdn" not in html.lower()  # htmx from django-htmx, nothing remote


def test_opening_the_raft_lab_creates_one_simulation_and_reuses_it(client, clean_redis):
    first = client.get("/lab/raft/")
    assert first.status_code == 302
    sim_url = first["Location"]
    assert client.get("/lab/raft/")["Location"] == sim_url  # the same learner returns to it
    sim_id = sim_url.rstrip("/").split("/")[-1]
    meta = clean_redis.hgetall(keys.meta_key(sim_id))
    assert meta["kind"] == "raft" and int(meta["seed"]) >= 0
    page = client.get(sim_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/ws/sim/{sim_id}/" in html and meta["share"] in html  # the owner sees the share link
    assert page.context["role"] == "owner"


def test_a_share_link_gives_a_read_only_page_and_strangers_get_404(client, clean_redis):
    sim_url = client.get("/lab/raft/")["Location"]
    sim_id = sim_url.rstrip("/").split("/")[-1]
    share = clean_redis.hget(keys.meta_key(sim_id), "share")
    stranger = Client()
    assert stranger.get(sim_url).status_code == 404
    assert stranger.get(sim_url + "?watch=wrong").status_code == 404
    watching = stranger.get(sim_url + f"?watch={share}")
    assert watching.status_code == 200 and watching.context["role"] == "viewer"
    assert f"?watch={share}" in watching.context["ws_path"]


def test_the_session_cap_gives_a_clear_message(client, settings):
    settings.LAB = {**settings.LAB, "MAX_SIMS_PER_SESSION": 2}
    assert client.get("/lab/raft/").status_code == 302
    assert client.post("/lab/raft/new").status_code == 302
    refused = client.post("/lab/raft/new")
    assert refused.status_code == 429
    assert "You already run 2 simulations" in refused.content.decode()


def test_closing_a_simulation_frees_its_slot(client, clean_redis):
    sim_url = client.get("/lab/raft/")["Location"]
    sim_id = sim_url.rstrip("/").split("/")[-1]
    assert client.post(sim_url + "close").status_code == 302
    assert not clean_redis.exists(keys.meta_key(sim_id))
    assert client.get(sim_url).status_code == 404


def test_planned_patterns_say_so(client):
    page = client.get("/lab/event_sourcing/")
    assert page.status_code == 404 and "not live yet" in page.content.decode()


def test_production_settings_pass_check_deploy():
    env = dict(os.environ)
    env.update(
        {
            "LAB_ENV": "production",
            "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-for-the-check-only-" + "x" * 20,
            "DJANGO_ALLOWED_HOSTS": "lab.example.org",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_secrets():
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS")}
    env["LAB_ENV"] = "production"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr
