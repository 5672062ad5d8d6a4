"""Config files in the encodings editors write (pre-commit#1550 kind): UTF-8 with or
without a byte-order mark and UTF-16 with one are read; anything else is one ``error:``
line naming the file and the encoding found, never a UnicodeDecodeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mnistcnn
from mnistcnn.config.files import read_config_file
from mnistcnn.errors import SettingError

SRC = str(Path(mnistcnn.__file__).resolve().parents[1])


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "mnistcnn", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_print_config_saved_as_utf16_reads_back(tmp_path: Path) -> None:
    """`train --print-config | iconv -t UTF-16 > c.json; train --config c.json`."""
    first = _train("--seed", "7", "--print-config")
    assert first.returncode == 0, first.stderr
    config = tmp_path / "c.json"
    config.write_bytes(first.stdout.encode("utf-16"))  # a byte-order mark, as iconv writes
    assert config.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    again = _train("--config", str(config), "--print-config")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bom.toml", b"\xef\xbb\xbfbatch_size = 32\n"),  # was: Invalid statement (line 1, col 1)
        ("bom.yaml", b"\xef\xbb\xbfbatch_size: 32\n"),
        ("bom.json", b'\xef\xbb\xbf{"batch_size": 32}'),
        ("le.toml", b"\xff\xfe" + "# r\u00e9glage\nbatch_size = 32\n".encode("utf-16-le")),
        ("be.yaml", b"\xfe\xff" + "batch_size: 32 # \u00e9\n".encode("utf-16-be")),
        ("plain.yaml", "# r\u00e9glage\nbatch_size: 32\n".encode()),
    ],
)  # fmt: skip
def test_utf8_with_or_without_bom_and_utf16_with_bom_are_read(
    tmp_path: Path, name: str, data: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    assert read_config_file(path).settings == {"batch_size": 32}


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("cp.yaml", "# Ren\u00e9e\u2019s run\nbatch_size: 32\n".encode("cp1252"),
         "not UTF-8: byte 0xe9 at line 1, column 6; the file looks like Windows-1252 (cp1252) "
         "or another 8-bit encoding: save it as UTF-8 (or UTF-16 with a byte-order mark)"),
        ("nobom.json", '{"batch_size": 32}'.encode("utf-16-le"),
         "not UTF-8: byte 0x00 at line 1, column 2; the file looks like UTF-16 without a "
         "byte-order mark: save it as UTF-8"),
        ("wide.toml", "batch_size = 32\n".encode("utf-32"),
         "the file is UTF-32 (little-endian); save it as UTF-8 (or UTF-16 with a byte-order "
         "mark)"),
    ],
)  # fmt: skip
def test_other_encodings_are_one_error_naming_file_and_encoding(
    tmp_path: Path, name: str, data: bytes, said: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SettingError) as info:
        read_config_file(path)
    assert str(info.value).startswith(f"{path}: {said}")


def test_a_cp1252_yaml_comment_is_one_error_line_from_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("# \u2018quick\u2019 run\nepochs: 1\n".encode("cp1252"))
    r = _train("--config", str(path), "--print-config")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "UnicodeDecodeError" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: {path}: not UTF-8: byte 0x91 at line 1, column 3; the file looks like "
        "Windows-1252 (cp1252) or another 8-bit encoding: save it as UTF-8 (or UTF-16 with "
        "a byte-order mark)"
    ]
