"""`fer.app.internals`: each use of Gradio's private internals still does what the app relies on,
under the pinned Gradio (a Gradio upgrade that breaks one fails here first)."""

from __future__ import annotations

import logging
import sys

import gradio
import pytest

from fer.app import internals


def test_gradio_is_the_pinned_release() -> None:
    assert gradio.__version__ == internals.PINNED_GRADIO and internals.check_version()


@pytest.fixture(scope="module")
def blocks() -> gradio.Blocks:
    from fer.app.server import build_app

    return build_app()


def test_per_session_copies_of_inline_pictures_are_dropped(blocks: gradio.Blocks) -> None:
    from gradio.state_holder import StateHolder

    holder = StateHolder()
    holder.set_blocks(blocks)
    session = holder["someone"]
    internals.forget_shown(holder)  # what the page shows on arrival (the Live tab's example) may be inline too
    ids = list(session.config_values)[:3]
    session.config_values[ids[0]]["props"]["value"] = "<img src='data:image/jpeg;base64,AAAA'>"
    session.config_values[ids[1]]["props"]["value"] = {"url": "data:image/png;base64,BBBB", "path": None}
    session.config_values[ids[2]]["props"]["value"] = "plain text"
    assert internals.sessions_held(holder) == 1
    assert internals.forget_shown(holder) == 2
    assert session.config_values[ids[0]]["props"]["value"] is None
    assert session.config_values[ids[2]]["props"]["value"] == "plain text"
    assert internals.forget_shown(holder) == 0
    assert internals.carries_inline([{"a": ("x", "data:image/webp;base64,C")}])


def test_gradio_request_errors_are_one_log_line(caplog: pytest.LogCaptureFixture,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import gradio.queueing
    import gradio.routes
    import gradio.utils

    internals.one_line_errors()
    for module in (gradio.queueing, gradio.routes, gradio.utils):
        assert module.traceback.format_exc is not None  # the rest of the module is the real one
    with caplog.at_level(logging.WARNING, logger="fer.app"):
        try:
            raise ValueError("Value: 'x' is not in the list of choices\nmore detail")
        except ValueError:
            gradio.queueing.traceback.print_exc()
    assert capsys.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records] == [
        "request refused: ValueError: Value: 'x' is not in the list of choices"]
    assert sys.exc_info() == (None, None, None)


def test_example_copies_are_known_and_the_cache_can_be_emptied(blocks: gradio.Blocks, tmp_path) -> None:
    assert internals.kept_in_cache(blocks) == set()  # the app's examples are buttons: nothing kept in the cache
    cached = tmp_path / "x.png"
    cached.write_bytes(b"1")
    blocks.temp_file_sets.append({str(cached)})
    internals.empty_cache(blocks)
    assert not cached.exists()


def test_a_full_session_store_evicts_sessions_of_no_browser_first(blocks: gradio.Blocks) -> None:
    """Gradio's store at capacity: sessions that are no browser's tab go first, then (only when none
    is left) the least recently used of all, the one being used never."""
    from gradio.state_holder import StateHolder

    from fer.app.owners import MAX_TABS_PER_BROWSER, Owners

    owners = Owners()
    holder = StateHolder()
    holder.set_blocks(blocks)
    holder.capacity = MAX_TABS_PER_BROWSER + 4
    internals.evict_anonymous_first(holder, owners.anonymous)
    owners.check("visitor", "c" * 32)
    holder["visitor"]  # the oldest session of all
    for i in range(50):  # an API client's calls, one session each
        owners.check(f"api-{i}", None)
        holder[f"api-{i}"]
    assert "visitor" in holder and len(holder.session_data) == holder.capacity
    # One browser's sessions past its first few tabs count as no browser's.
    for i in range(MAX_TABS_PER_BROWSER + 10):
        owners.check(f"tab-{i}", "d" * 32)
        holder[f"tab-{i}"]
    assert "visitor" in holder and "tab-0" in holder and f"tab-{MAX_TABS_PER_BROWSER + 9}" in holder
    # Only browser tabs left (3 sessions of no browser remain): then the least recently used goes.
    for i in range(1, 4):
        owners.check(f"other-{i}", f"{i:032x}")
        holder[f"other-{i}"]
    assert "visitor" in holder
    owners.check("other-4", f"{4:032x}")
    holder["other-4"]
    assert "visitor" not in holder and "other-4" in holder and len(holder.session_data) == holder.capacity
