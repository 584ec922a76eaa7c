"""`fer.app.safezip`: uploaded archives cannot escape their folder, explode or crash the request;
`read_members` reads them into memory; `members_root` finds the labelled data under wrapping folders
but keeps a single label folder."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from fer.app.safezip import members_root, read_members, safe_extract
from fer.errors import InputError

from .badinputs import _zip, zip_cases

REFUSED = {c.name: c for c in zip_cases() if c.expect == "error" and c.name.startswith("zip-")}


@pytest.mark.parametrize("name", [n for n in REFUSED if n not in ("zip-bomb", "zip-too-many-entries", "zip-no-entries")])
def test_refused_archives_write_nothing(tmp_path: Path, name: str) -> None:
    case = REFUSED[name]
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(InputError) as caught:
        safe_extract(case.make(), dest, "faces.zip")
    message = str(caught.value)
    assert message.startswith("faces.zip:") and case.reason.lower() in message.lower() and "\n" not in message
    assert len(message) < 200 and not (tmp_path / "evil.png").exists()
    assert not any(dest.rglob("*.png")) or name == "zip-file-folder-clash"


@pytest.mark.parametrize(("entry", "reason"), [
    ("../evil.txt", "refused entry '../evil.txt'"), ("happy/../../evil.txt", "refused entry"),
    ("/etc/evil.txt", "refused entry '/etc/evil.txt'"), ("C:/evil.txt", "refused entry"),
])
def test_escaping_names_are_checked_before_anything_is_written(tmp_path: Path, entry: str, reason: str) -> None:
    dest = tmp_path / "out" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(InputError, match=reason.replace("(", r"\(").replace(".", r"\.")):
        safe_extract(_zip({"happy/ok.txt": b"fine", entry: b"evil"}), dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_limits_links_and_lying_sizes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="5 entries, over the 3 limit"):
        safe_extract(_zip({f"happy/{i}.txt": b"x" for i in range(5)}), tmp_path, max_entries=3)
    big = _zip({"happy/zeros.bin": bytes(3 * 2**20)})
    with pytest.raises(InputError, match="unpack to 3 MB, over the 1 MB limit"):
        safe_extract(big, tmp_path / "x", max_unpacked=2**20)
    with pytest.raises(InputError, match="over the 0 MB limit"):
        safe_extract(big, tmp_path / "x", max_bytes=100)
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("happy/link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        safe_extract(link.read_bytes(), tmp_path / "y")
    data = bytearray(_zip({"happy/zeros.bin": bytes(2**20)}))
    struct.pack_into("<I", data, data.index(b"PK\x03\x04") + 22, 10)  # both headers claim 10 bytes
    struct.pack_into("<I", data, data.index(b"PK\x01\x02") + 24, 10)
    with pytest.raises(InputError, match="damaged entry"):
        safe_extract(bytes(data), tmp_path / "out")
    with pytest.raises(InputError, match="appears twice"):
        safe_extract(_zip({"happy/a.png": b"1"}) [:0] or _duplicate(), tmp_path / "dup")


def _duplicate() -> bytes:
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it writes
        archive.writestr("happy/a.png", b"1")
        archive.writestr("happy/a.png", b"2")
    return buffer.getvalue()


def test_good_archives_unpack(tmp_path: Path) -> None:
    written = safe_extract(_zip({"faces/happy/a.png": b"1", "faces/sad/b.png": b"2", "./faces/neutral/c.png": b"3"}),
                           tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "faces/happy/a.png", "faces/neutral/c.png", "faces/sad/b.png"]


def test_members_root_descends_wrappers_but_keeps_a_single_label_folder() -> None:
    def root(*names: str, labels: frozenset[str] = frozenset({"happy", "sad"})) -> str:
        return members_root([PurePosixPath(n) for n in names], labels).as_posix()

    assert root("faces/happy/a.png", "faces/sad/b.png", "__MACOSX/faces/._a.png") == "faces"
    assert root("happy/x.png", labels=frozenset({"happy"})) == "."
    assert root("happy/session1/x.png", labels=frozenset({"happy"})) == "."  # a label, even with subfolders
    assert root("wrap/inner/happy/a.png", "wrap/inner/sad/b.png") == "wrap/inner"


def test_members_are_read_into_memory_and_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    members = read_members(_zip({"faces/happy/a.png": b"1", "faces/sad/b.png": b"2", "./faces/neutral/c.png": b"3"}))
    assert members == {PurePosixPath("faces/happy/a.png"): b"1", PurePosixPath("faces/sad/b.png"): b"2",
                       PurePosixPath("faces/neutral/c.png"): b"3"}
    assert list(tmp_path.iterdir()) == []
    for evil in ("../x.png", "/etc/x.png", "C:/x.png", "a/../../x.png"):
        with pytest.raises(InputError, match="refused entry"):
            read_members(_zip({"happy/ok.png": b"1", evil: b"2"}))
