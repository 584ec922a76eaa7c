"""`fer.app.sessions`: what browser sessions keep is bounded in count per session, total bytes and age."""

from __future__ import annotations

from fer.app.sessions import Kept, SessionMemory


def test_one_item_per_session_and_kind() -> None:
    memory = SessionMemory(budget_bytes=1000, ttl_s=60)
    assert memory.put("a", "image", Kept(b"x" * 100, "one.png"), now=0)
    assert memory.put("a", "image", Kept(b"y" * 100, "two.png"), now=1)
    assert memory.put("a", "video", Kept(b"z" * 100, "clip.mp4"), now=1)
    assert len(memory) == 2 and memory.get("a", "image", now=2).name == "two.png"
    assert memory.get("b", "image", now=2) is None
    memory.drop("a", "video")
    assert memory.get("a", "video", now=2) is None and memory.get("a", "image", now=2) is not None
    memory.drop("a")  # the tab closed
    assert len(memory) == 0


def test_api_calls_keep_nothing() -> None:
    memory = SessionMemory()
    assert not memory.put(None, "image", Kept(b"x", "a.png")) and not memory.put("", "image", Kept(b"x", "a.png"))
    assert len(memory) == 0 and memory.get(None, "image") is None


def test_budget_drops_the_least_recently_used() -> None:
    memory = SessionMemory(budget_bytes=250, ttl_s=60)
    for i, session in enumerate("abc"):
        memory.put(session, "image", Kept(b"x" * 100, f"{session}.png"), now=i)
    assert memory.get("a", "image", now=3) is None  # a was the oldest: dropped for c
    assert memory.bytes == 200
    memory.get("b", "image", now=4)  # b used again: c is now the oldest
    memory.put("d", "image", Kept(b"x" * 100, "d.png"), now=5)
    assert memory.get("c", "image", now=6) is None and memory.get("b", "image", now=6) is not None
    assert not memory.put("e", "image", Kept(b"x" * 300, "huge.png"), now=7)  # over the whole budget
    assert memory.bytes <= 250


def test_items_expire_after_the_ttl_and_size_counts_what_was_computed() -> None:
    memory = SessionMemory(budget_bytes=10_000, ttl_s=10)
    memory.put("a", "image", Kept(b"x" * 10, "a.png", extra="analysis", size=5_000), now=0)
    assert memory.bytes == 5_000
    assert memory.get("a", "image", now=9) is not None  # used: its age starts again
    memory.expire(now=18)
    assert len(memory) == 1
    memory.expire(now=19.5)
    assert len(memory) == 0
