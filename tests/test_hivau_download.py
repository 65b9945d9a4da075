"""`HIVAU-70k/download.py` against a local https mirror serving stand-in annotation files whose blob ids the test
computes with `git hash-object` (the registry's own entries, ids swapped in): exactly the files, where the data
tools look; idempotent; a kill mid-download leaves nothing where the tools look, and the next run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from https_mirror import Mirror

from holmesvau import released
from holmesvau.data.download import main
from holmesvau.data.layout import instruction_file, raw_database_file

TOOLS_LOOK_AT = {  # registry name -> path under ROOT, as split_video.py / check_video.py / reproduce.py read them
    "merge_instruction_test_final.jsonl": "instruction/merge_instruction_test_final.jsonl",
    "ucf_database_test.json": "raw_annotations/ucf_database_test.json",
    "xd_database_test.json": "raw_annotations/xd_database_test.json",
    "merge_instruction_train_final.jsonl": "instruction/merge_instruction_train_final.jsonl",
    "ucf_database_train.json": "raw_annotations/ucf_database_train.json",
    "xd_database_train.json": "raw_annotations/xd_database_train.json",
}
PATCH = """import json, sys
from holmesvau import released
for name, (blob, size) in json.loads(sys.argv[1]).items():
    released.REGISTRY[name] = released.ReleasedFile(name, released.REGISTRY[name].path, blob, size)
from holmesvau.data.download import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def standins(tmp_path, monkeypatch):
    """(mirror, {name: bytes}, {name: (blob, size)}): stand-ins served, their ids pinned in the registry."""
    m = Mirror(tmp_path)
    for k, v in m.env().items():
        monkeypatch.setenv(k, v)
    data, ids = {}, {}
    for i, name in enumerate(TOOLS_LOOK_AT):
        body = (json.dumps({"stand-in": name}) + "\n").encode() * (
            20_000 if i == 0 else 3
        )  # the first: ~1 MB
        (tmp_path / name).write_bytes(body)
        blob = subprocess.run(
            ["git", "hash-object", str(tmp_path / name)], capture_output=True, text=True
        ).stdout
        data[name], ids[name] = body, (blob.strip(), len(body))
        f = released.REGISTRY[name]
        monkeypatch.setitem(
            released.REGISTRY, name, released.ReleasedFile(name, f.path, blob.strip(), len(body))
        )
        m.serve(released.REGISTRY[name], body)
    yield m, data, ids
    m.close()


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_test_then_all_exactly_the_files_verified_and_idempotent(standins, tmp_path):
    mirror, data, _ = standins
    root = tmp_path / "HIVAU-70k"
    test_names = list(TOOLS_LOOK_AT)[:3]
    assert main(["--root", str(root)]) == 0
    assert files_under(root) == sorted(TOOLS_LOOK_AT[n] for n in test_names)
    assert instruction_file(root, "test").read_bytes() == data["merge_instruction_test_final.jsonl"]
    assert raw_database_file(root, "xd-violence", "test").read_bytes() == data["xd_database_test.json"]
    assert (
        main(["--root", str(root)]) == 0 and len(mirror.hits) == 3
    )  # idempotent: verified, not fetched again
    assert main(["--root", str(root), "--all"]) == 0 and len(mirror.hits) == 6
    assert files_under(root) == sorted(TOOLS_LOOK_AT.values())
    assert all((root / rel).read_bytes() == data[n] for n, rel in TOOLS_LOOK_AT.items())
    # a file in place that is not the release is refused and kept as it is (it may be the user's)
    raw_database_file(root, "ucf-crime", "test").write_text("{}")
    assert main(["--root", str(root)]) == 2
    assert raw_database_file(root, "ucf-crime", "test").read_text() == "{}" and len(mirror.hits) == 6


def test_a_kill_mid_download_leaves_nothing_where_the_tools_look(standins, tmp_path):
    mirror, data, ids = standins
    root = tmp_path / "HIVAU-70k"
    first = released.REGISTRY["merge_instruction_test_final.jsonl"]
    mirror.stall[mirror.path_of(first)] = 300_000  # sends this much, then hangs
    cmd = [sys.executable, "-c", PATCH, json.dumps(ids), "--root", str(root), "--quiet"]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        assert mirror.sent.wait(120), child.stderr.read() if child.poll() is not None else "no request came"
        partial = instruction_file(root, "test").with_name(
            f".merge_instruction_test_final.jsonl.{first.blob[:16]}.part"
        )
        for _ in range(200):  # until the child has written some of what the server sent
            if partial.exists() and partial.stat().st_size >= 65536:
                break
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    # only the hidden partial: no file the tools read
    assert files_under(root) == [f"instruction/{partial.name}"]
    have = partial.stat().st_size
    assert 0 < have <= 300_000 and partial.read_bytes() == data[first.name][:have]
    assert main(["--root", str(root)]) == 0
    assert mirror.gets(first) == [None, f"bytes={have}-"]  # resumed where the killed run stopped
    assert files_under(root) == sorted(list(TOOLS_LOOK_AT.values())[:3])
    assert instruction_file(root, "test").read_bytes() == data[first.name]
