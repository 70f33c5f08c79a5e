"""The variables wardtui adds to Textual's theme ($state-*, $panel-*): every screen's .tcss and
the Rich text of cells and log lines see them, resolved against the theme in use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.theme import Theme

from tests.fakes import FakeProber, make_devices
from wardtui.app import SHARED_VARIABLES, WardApp
from wardtui.runtime import Options, Runtime
from wardtui.widgets.states import StatePalette


@pytest.fixture
def app(tmp_path: Path) -> Iterator[WardApp]:
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}"), prober=FakeProber(),
                      devices=make_devices(2))
    app = WardApp(runtime)
    yield app
    app.engine_thread.close()


def colours(theme: Theme) -> dict[str, str]:
    """Textual's variables of ``theme`` ($error, $primary, ...)."""
    return theme.to_color_system().generate()


def test_shared_variables_are_resolved_against_the_theme(app: WardApp) -> None:
    theme = colours(app.current_theme)
    variables = app.get_css_variables()
    assert variables["state-down"] == theme["error"]
    assert variables["state-up"] == theme["success"]
    assert variables["state-flapping"] == theme["warning"]
    assert variables["state-unreachable"] == theme["primary"]
    assert variables["panel-border"] == f"{theme['primary']} 50%"
    assert variables["panel-border-focus"] == theme["accent"]
    assert variables["panel-title"] == theme["text-accent"]
    assert set(SHARED_VARIABLES) <= set(app.theme_variables)
    assert not any("$" in app.theme_variables[name] for name in SHARED_VARIABLES)
    palette = StatePalette.from_variables(app.theme_variables)
    assert palette.down == f"bold {theme['error']}" and palette.up == theme["success"]
    assert palette.unreachable == theme["primary"]


def test_another_theme_gets_its_own_colours(app: WardApp) -> None:
    app.theme = "nord"
    nord = app.get_theme("nord")
    assert nord is not None
    assert app.get_css_variables()["state-down"] == colours(nord)["error"] != colours(app.get_theme(
        "textual-dark") or nord)["error"]


def test_a_theme_may_set_wardtuis_variables(app: WardApp) -> None:
    """They are theme variable defaults (Textual's public route): a theme's own value wins."""
    app.register_theme(Theme("site", primary="#0178d4", error="#ff0000", dark=True,
                             variables={"state-down": "#aa00aa", "panel-border": "$error 30%"}))
    app.theme = "site"
    variables = app.get_css_variables()
    assert variables["state-down"] == "#aa00aa"
    assert variables["state-up"] == colours(app.current_theme)["success"]
    assert variables["panel-border"] == f"{colours(app.current_theme)['error']} 30%"


def test_the_stylesheet_declares_none_of_them() -> None:
    """One home: declared in app.py, not also in app.tcss (which Textual scopes to one file)."""
    tcss = (Path(__file__).parents[2] / "wardtui" / "app.tcss").read_text(encoding="utf-8")
    assert not [name for name in SHARED_VARIABLES if f"${name}:" in tcss]
