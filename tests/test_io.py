"""alignrank.io: the one atomic writer. Unwritable folders and full disks are simulated by making the
system calls fail (the sandbox runs as root, where chmod does not deny writes)."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from alignrank import errors
from alignrank import io as aio
from alignrank.errors import AlignRankError

WRITERS = {
    "bytes": lambda p: aio.atomic_write_bytes(p, b'{"new": 1}'),
    "text": lambda p: aio.atomic_write_text(p, '{"new": 1}'),
    "json": lambda p: aio.atomic_write_json(p, {"new": 1}),
    "yaml": lambda p: aio.atomic_write_yaml(p, {"new": 1}),
    "npz": lambda p: aio.atomic_write_npz(p, new=np.ones(1)),
}
FAULTS = {  # (errno, where it strikes, the fix the message must name)
    "read-only folder at open": (errno.EACCES, "open", "make the folder writable"),
    "read-only folder at rename": (errno.EACCES, "replace", "make the folder writable"),
    "full disk at write": (errno.ENOSPC, "fsync", "free disk space"),
    "full disk at rename": (errno.ENOSPC, "replace", "free disk space"),
    "read-only file system": (errno.EROFS, "open", "writable disk"),
}


def _fail(monkeypatch, where: str, code: int) -> None:
    exc = PermissionError if code == errno.EACCES else OSError

    def boom(*a, **k):
        raise exc(code, os.strerror(code))

    monkeypatch.setattr(os, where, boom)


@pytest.mark.reliability
@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_failed_write_is_one_line_keeps_previous_file_and_no_temp(kind, fault, tmp_path, monkeypatch):
    target = tmp_path / "out" / "result.dat"
    target.parent.mkdir()
    target.write_bytes(b"old")
    code, where, fix = FAULTS[fault]
    _fail(monkeypatch, where, code)
    with pytest.raises(aio.OutputWriteError) as e:
        WRITERS[kind](target)
    monkeypatch.undo()
    msg = str(e.value)
    assert isinstance(e.value, OSError) and isinstance(e.value, AlignRankError) and e.value.errno == code
    assert "\n" not in msg and msg.startswith(f"cannot write {target}: ") and fix in msg, msg
    assert e.value.filename == str(target) and errno.errorcode[code] in msg
    assert target.read_bytes() == b"old" and [p.name for p in target.parent.iterdir()] == ["result.dat"]
    WRITERS[kind](target)  # writable again: the write goes through, still no temp file
    assert target.read_bytes() != b"old" and [p.name for p in target.parent.iterdir()] == ["result.dat"]


def test_interrupt_mid_write_leaves_no_temp_and_is_not_wrapped(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        aio.atomic_write_json(target, {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_formats_and_permissions(tmp_path):
    p = aio.atomic_write_json(tmp_path / "sub" / "a.json", {"b": 1, "a": float("nan"), "c": np.float32(0.5)})
    assert p.read_text() == '{\n  "b": 1,\n  "a": null,\n  "c": 0.5\n}\n'  # one format: key order kept, NaN -> null
    assert aio.atomic_write_json(tmp_path / "c.json", {"é": [1, 2]}, indent=None).read_text(encoding="utf-8") == '{"é":[1,2]}\n'
    assert aio.atomic_write_yaml(tmp_path / "e.yaml", {"b": 1, "a": 2}, header="# h\n").read_text() == "# h\nb: 1\na: 2\n"
    assert np.load(aio.atomic_write_npz(tmp_path / "f.npz", x=np.arange(3)))["x"].tolist() == [0, 1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == 0o666 & ~umask  # the umask applies, as for open()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.json", "e.yaml", "f.npz", "sub"]


def test_two_writers_never_share_a_temp_file(tmp_path, monkeypatch):
    """Temp names carry the pid and a random part: two processes writing one file at once never collide."""
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(os.path.basename(a)), real(a, b)))
    for _ in range(3):
        aio.atomic_write_text(tmp_path / "best.pt", "x")
    assert len(set(seen)) == 3 and all(str(os.getpid()) in n for n in seen)


def test_error_survives_pickling_across_processes(tmp_path):
    import pickle

    e = errors.disk_error(tmp_path / "x.json", OSError(errno.ENOSPC, "full"))
    f = pickle.loads(pickle.dumps(e))
    assert type(f) is errors.OutputWriteError and f.errno == errno.ENOSPC and str(f) == str(e)
    assert json.dumps(str(f))  # one printable line
