"""One vocabulary: the dashboard's footer, its help and the README name the keys alike."""

from __future__ import annotations

import re
from pathlib import Path

from wardtui.screens.dashboard import OTHER_KEYS, DashboardScreen

README = Path(__file__).resolve().parents[2] / "README.md"
SHOWN = {"slash": "/", "colon": ":", "question_mark": "?", "escape": "Esc"}


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_footer_words_are_the_readme_words() -> None:
    """Each key in the footer is listed in README's Use section under the footer's word (the
    footer said 'p Issues' and ': Go' where README and help said problems and command line)."""
    use = " ".join(readme_section("Use").split())
    for binding in DashboardScreen.BINDINGS:
        if not getattr(binding, "show", True):
            continue
        key, word = SHOWN.get(binding.key, binding.key), binding.description.lower()
        assert f"`{key}` {word}" in use, (key, word)


def test_tab_completes_in_readme_and_help() -> None:
    use = readme_section("Use")
    assert "Tab completes" in use
    assert any(key.startswith("Tab (in : line)") and "complete" in text for key, text in OTHER_KEYS)


def test_use_says_where_wardtui_is_after_the_quick_start() -> None:
    """Quick start 1 installs into .venv, which is not on PATH: Use says so before `wardtui ...`."""
    use = readme_section("Use")
    first_command = use.index("wardtui --inventory")
    assert re.search(r"`\.venv/bin/wardtui`", use[:first_command])
    assert ". .venv/bin/activate" in use[:first_command]
