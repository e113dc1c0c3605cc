"""A logical host's settings (ajs3.yaml): defaults, every key checked, unsafe files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ajs3.errors import AjsError, Code
from ajs3.settings import DEFAULT_PASSTHROUGH, load_settings


def write(datadir: Path, text: str, mode: int = 0o644) -> Path:
    path = datadir / "ajs3.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_no_file_means_every_default(tmp_path: Path) -> None:
    s = load_settings(tmp_path, "lh1")
    assert (s.host_concurrency, s.default_user, s.allow_root_jobs) == (None, "nobody", False)
    assert (s.operators_group, s.viewers_group) == ("ajs3-operators", "ajs3-viewers")
    assert s.env_passthrough == DEFAULT_PASSTHROUGH


def test_every_key_is_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        "host_concurrency: 3\noperators_group: ops\nviewers_group: eyes\n"
        "default_user: batch\nallow_root_jobs: true\nenv_passthrough: [LANG, ORACLE_HOME]\n",
    )
    s = load_settings(tmp_path, "lh1")
    assert s.host_concurrency == 3 and s.allow_root_jobs is True
    assert (s.operators_group, s.viewers_group, s.default_user) == ("ops", "eyes", "batch")
    assert s.env_passthrough == ("LANG", "ORACLE_HOME")


@pytest.mark.parametrize(
    "text",
    [
        "host_concurrncy: 3\n",
        "host_concurrency: 0\n",
        "allow_root_jobs: yes please\n",
        "env_passthrough: LANG\n",
        "default_user: ''\n",
        "- a list\n",
        "a: [unclosed\n",
    ],
)
def test_a_bad_setting_is_a_coded_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(AjsError) as info:
        load_settings(tmp_path, "lh1")
    assert info.value.code is Code.SETTINGS and str(path) in info.value.message


def test_settings_that_others_may_write_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "allow_root_jobs: true\n", mode=0o666)
    with pytest.raises(AjsError) as info:
        load_settings(tmp_path, "lh1")
    assert info.value.code is Code.UNSAFE_FILE
    assert str(path) in info.value.message and "0666" in info.value.message
