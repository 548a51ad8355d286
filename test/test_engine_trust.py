# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Engine cache trust (temcoco_core.engine.trust), issue 11 case 9."""

from __future__ import annotations

import json
import os
from pathlib import Path
import pickle
import stat
import threading
import zipfile

import pytest
import torch

from temcoco_core.engine.trust import (
    atomic_path,
    atomic_write,
    CacheTrustError,
    file_sha256,
    load_exported_program,
    PickleRefusedError,
    private_dir,
    untrusted_reason,
    verify_file,
)


def test_private_dir_is_0700_and_world_writable_parents_get_a_user_folder(tmp_path: Path
                                                                          ) -> None:
    d = private_dir(tmp_path / "cache" / "engines")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and d == tmp_path / "cache" / "engines"
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    d = private_dir(shared)
    assert d == shared / f"user-{os.geteuid()}"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert private_dir(shared) == d  # reused
    d.chmod(0o777)  # somebody opened it up: refused
    with pytest.raises(CacheTrustError, match="not a private folder"):
        private_dir(shared)


def test_untrusted_files_are_named(tmp_path: Path) -> None:
    f = atomic_write(tmp_path / "e.onnx", b"graph")
    assert untrusted_reason(f) is None and stat.S_IMODE(f.stat().st_mode) == 0o600
    f.chmod(0o666)
    assert "writable by other users" in untrusted_reason(f)
    f.chmod(0o600)
    link = tmp_path / "l.onnx"
    link.symlink_to(f)
    assert "symbolic link" in untrusted_reason(link)
    if os.geteuid() == 0:  # root can plant a file owned by somebody else
        os.chown(f, 12345, 12345)
        assert "owned by uid 12345" in untrusted_reason(f)
        os.chown(f, 0, 0)


def test_content_hash_is_checked(tmp_path: Path) -> None:
    f = atomic_write(tmp_path / "e.onnx", b"graph")
    digest = file_sha256(f)
    verify_file(f, digest)
    f.write_bytes(b"planted graph")
    with pytest.raises(CacheTrustError, match="does not match"):
        verify_file(f, digest)
    with pytest.raises(CacheTrustError, match="no content hash"):
        verify_file(f, None)


def test_atomic_writes_use_unique_names_and_never_follow_a_planted_symlink(tmp_path: Path
                                                                           ) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "engine.onnx.json"
    # the old fixed temp name, planted as a symlink to another file
    (tmp_path / "engine.onnx.json.tmp").symlink_to(victim)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for _ in range(20):
                atomic_write(target, json.dumps({"writer": i}))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert victim.read_text() == "precious"
    assert json.loads(target.read_text())["writer"] in range(4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".engine")]
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.ep") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("build failed")
    assert not (tmp_path / "x.ep").exists() and not list(tmp_path.glob(".x.ep.*"))


class _Evil:
    def __reduce__(self):  # runs at unpickling time
        return (os.system, (f"touch {os.environ['TEMCOCO_PWNED']}",))


def _program(path: Path) -> Path:
    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    torch.export.save(torch.export.export(M(), (torch.zeros(1, 3),)), str(path))
    return path


def test_exported_program_loads_without_pickle(tmp_path: Path) -> None:
    prog = load_exported_program(_program(tmp_path / "m.ep"))
    assert prog.module()(torch.ones(1, 3)).shape == (1, 2)


def test_malicious_program_is_refused_and_runs_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted engine whose weights would run code is refused.

    A planted .ep whose weight is a pickle that runs a command (torch.export.load would run it:
    weights with use_pickle are read with weights_only=False).
    """
    good = _program(tmp_path / "m.ep")
    bad = tmp_path / "bad.ep"
    pwned = tmp_path / "pwned"
    monkeypatch.setenv("TEMCOCO_PWNED", str(pwned))
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("model_weights_config.json"):
                cfg = json.loads(data)
                for entry in cfg["config"].values():
                    entry["use_pickle"] = True
                data = json.dumps(cfg).encode()
            elif "/data/weights/weight_" in item.filename:
                data = pickle.dumps(_Evil())
            zout.writestr(item, data)
    with pytest.raises(PickleRefusedError, match="refusing to load"):
        load_exported_program(bad)
    assert not pwned.exists()
    assert torch.load is not None and load_exported_program(good) is not None  # restored
