"""Zip integrity (truncated, bad CRC, missing members, counts) and safe extraction refusals."""

from __future__ import annotations

import os
import stat
import zipfile

import pytest

from alignrank.data.archive import CorruptArchive, safe_extract, verify_zip
from alignrank.errors import DataError

pytestmark = pytest.mark.reliability


def _zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "evil",
    ["/etc/evil.txt", "../evil.txt", "a/../../evil.txt", "C:/evil.txt", "a\\..\\evil.txt"],
)
def test_member_escaping_the_target_is_refused_before_anything_is_written(tmp_path, evil):
    z = _zip(tmp_path / "x.zip", {"good/first.txt": b"1", evil: b"pwned"})
    dest = tmp_path / "deep" / "out"
    with pytest.raises(DataError) as e:
        safe_extract(z, dest)
    assert "refusing to extract" in str(e.value) and evil in str(e.value)
    assert not any(p.is_file() for p in tmp_path.rglob("*") if p.name != "x.zip")  # not even the good member
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()


def test_symlink_member_is_refused(tmp_path):
    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract(z, tmp_path / "out")
    assert not os.path.lexists(tmp_path / "out" / "link")


def test_extract_selected_members_with_strip(tmp_path):
    z = _zip(tmp_path / "i.zip", {"train2017/a.jpg": b"a", "train2017/b.jpg": b"b", "train2017/c.jpg": b"c"})
    out = safe_extract(z, tmp_path / "img", ["train2017/c.jpg", "train2017/a.jpg"], strip=1)
    assert [p.name for p in out] == ["c.jpg", "a.jpg"]
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == ["a.jpg", "c.jpg"]
    assert (tmp_path / "img" / "a.jpg").read_bytes() == b"a"
    with pytest.raises(DataError, match="not in the archive"):
        safe_extract(z, tmp_path / "img", ["train2017/zzz.jpg"], strip=1)


def test_verify_zip_detects_truncation_bad_crc_and_missing_members(tmp_path):
    payload = os.urandom(50_000)
    z = _zip(tmp_path / "ok.zip", {"val2017/1.jpg": payload, "val2017/2.jpg": payload[::-1]})
    verify_zip(z, required=["val2017/1.jpg"], expected_count=(".jpg", 2))
    data = z.read_bytes()
    (tmp_path / "trunc.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptArchive, match="truncated or corrupt"):
        verify_zip(tmp_path / "trunc.zip")
    flipped = bytearray(data)
    flipped[1000:1010] = bytes(b ^ 0xFF for b in flipped[1000:1010])  # inside the first member's data
    (tmp_path / "crc.zip").write_bytes(bytes(flipped))
    with pytest.raises(CorruptArchive, match="CRC"):
        verify_zip(tmp_path / "crc.zip")
    with pytest.raises(CorruptArchive, match="1 expected member.*val2017/3.jpg"):
        verify_zip(z, required=["val2017/1.jpg", "val2017/3.jpg"])
    with pytest.raises(CorruptArchive, match="2 '\\*.jpg' members, expected 5000"):
        verify_zip(z, expected_count=(".jpg", 5000))


def test_zip_bomb_member_is_refused_before_anything_is_written(tmp_path):
    from alignrank.data.archive import ArchiveBomb

    z = _zip(tmp_path / "b.zip", {"x/good.txt": b"ok", "x/bomb.bin": bytes(3 << 20)}, zipfile.ZIP_DEFLATED)
    assert z.stat().st_size < 10_000  # 3 MiB of zeros deflate ~1000x
    for kw, why in (({"max_bytes": 2 << 20, "max_ratio": 10_000}, r"limit: 2097152 bytes"),  # size cap
                    ({}, r"limit: 100x its compressed size, at least 1048576")):  # ratio cap (defaults)
        with pytest.raises(ArchiveBomb, match=rf"member 'x/bomb.bin' inflates to 3145728 bytes from \d+ \({why}\)"):
            safe_extract(z, tmp_path / "out", **kw)
        assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))  # not even the good member
    assert [p.name for p in safe_extract(z, tmp_path / "ok", max_ratio=10_000)] == ["good.txt", "bomb.bin"]


def test_member_whose_header_understates_its_size_is_refused_and_leaves_nothing(tmp_path):
    """Declared 1000 bytes, inflates to 3 MiB: the streamed bytes (or zipfile's CRC check at the declared size) stop it."""
    z = _zip(tmp_path / "lie.zip", {"bomb.bin": bytes(3 << 20)}, zipfile.ZIP_DEFLATED)
    data = bytearray(z.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory: uncompressed size
        at = data.index(sig)
        data[at + offset: at + offset + 4] = (1000).to_bytes(4, "little")
    z.write_bytes(bytes(data))
    with zipfile.ZipFile(z) as zf:
        assert zf.getinfo("bomb.bin").file_size == 1000
    with pytest.raises(DataError, match="member 'bomb.bin'"):
        safe_extract(z, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
