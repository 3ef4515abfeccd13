"""The CLI's plain-words errors and checks (no model needed)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from forgetd.cli import app
from forgetd.settings import Settings, get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _settings_from(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FORGETD_KEY_PREFIX", settings.key_prefix)
    monkeypatch.setenv("FORGETD_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("FORGETD_API_PORT", "9")  # discard port: nothing listens there
    get_settings.cache_clear()


@pytest.mark.parametrize("probe", ["no separator", "::only completion", "only prompt::"])
def test_submit_refuses_a_malformed_probe_without_echoing_it(probe: str) -> None:
    result = runner.invoke(app, ["submit", "Some text to forget here", "--probe", probe])

    assert result.exit_code == 1
    assert "PROMPT::COMPLETION" in result.output
    assert "Some text" not in result.output


def test_submit_says_when_the_api_is_unreachable() -> None:
    result = runner.invoke(app, ["submit", "Some text to forget here"])

    assert result.exit_code == 1
    assert "cannot reach the API" in result.output


def test_invalid_settings_are_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETD_LORA_RANK", "7")

    result = runner.invoke(app, ["adapters", "list"])

    assert result.exit_code == 2
    assert "lora_rank" in result.output


def test_production_mode_refuses_placeholder_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETD_MODE", "production")

    result = runner.invoke(app, ["adapters", "list"])

    assert result.exit_code == 2
    assert "api_token" in result.output and "master_key" in result.output


def test_doctor_reports_each_check(settings: Settings) -> None:
    result = runner.invoke(app, ["doctor"])

    for name in ("redis", "model", "adapter store", "keys", "gpu"):
        assert f" {name}:" in result.output
    assert "FAIL redis" not in result.output


def test_doctor_says_what_is_wrong_with_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETD_REDIS_URL", "redis://127.0.0.1:9/0")

    result = runner.invoke(app, ["doctor"])

    assert result.exit_code == 1
    assert "FAIL redis: nothing answers" in result.output


def test_adapters_list_on_an_empty_store() -> None:
    result = runner.invoke(app, ["adapters", "list"])

    assert result.exit_code == 0


def test_keys_create_list_revoke() -> None:
    created = runner.invoke(app, ["keys", "create", "acme", "--scope", "submit", "--scope", "read"])
    assert created.exit_code == 0
    key_id = created.output.split()[2]
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith(f"fgd_{key_id}_")

    listed = runner.invoke(app, ["keys", "list"])
    assert key_id in listed.output and "tenant=acme" in listed.output and secret not in listed.output

    assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 1


def test_keys_create_refuses_a_bad_tenant() -> None:
    result = runner.invoke(app, ["keys", "create", "../acme", "--scope", "read"])

    assert result.exit_code == 1
    assert "invalid tenant" in result.output
