"""The test services' own rules (tests/services.py): what skips on a developer's machine, what
fails under CI, and that nothing is installed behind the user's back."""

from __future__ import annotations

import pytest
import services


@pytest.fixture
def developer_machine(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CODEIT_REQUIRE_SERVICES", raising=False)


def test_missing_chromium_skips_on_a_developer_machine_and_fails_under_ci(developer_machine, monkeypatch,
                                                                          tmp_path):
    monkeypatch.setattr(services, "chromium_path", lambda: None)
    with pytest.raises(pytest.skip.Exception, match="Chromium is not installed"):
        services.screenshot("http://127.0.0.1:1/", tmp_path / "page.png", [])
    monkeypatch.setenv("CODEIT_REQUIRE_SERVICES", "1")  # what scripts/ci-services start exports
    with pytest.raises(pytest.fail.Exception, match="Chromium is not installed"):
        services.screenshot("http://127.0.0.1:1/", tmp_path / "page.png", [])


def test_no_install_when_forbidden(developer_machine, monkeypatch, tmp_path):
    monkeypatch.setenv("CODEIT_MONGO_VENV", str(tmp_path / "venv"))
    monkeypatch.setenv("CODEIT_OMNIBOARD_DIR", str(tmp_path / "omniboard"))
    monkeypatch.setenv("CODEIT_TEST_INSTALL", "0")
    for script, what in ((services.MONGO_SERVER, services.MONGOECO), (services.OMNIBOARD, services.OMNIBOARD_NPM)):
        with pytest.raises(pytest.skip.Exception, match="CODEIT_TEST_INSTALL=0"):
            services.ensure_installed(script, what)
    assert not (tmp_path / "venv").exists() and not (tmp_path / "omniboard").exists()
