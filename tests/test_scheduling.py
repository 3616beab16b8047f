"""The suite's xdist scheduling (tests/scheduling.py): the files kept on one worker exist
(a renamed file would silently be split again), and only they are kept together."""

from __future__ import annotations

from pathlib import Path

from tests.scheduling import ONE_WORKER_FILES, work_unit

ROOT = Path(__file__).resolve().parent.parent


def test_the_files_kept_on_one_worker_exist() -> None:
    for path in ONE_WORKER_FILES:
        assert (ROOT / path).is_file(), path


def test_a_kept_file_is_one_unit_and_other_tests_are_one_each() -> None:
    wheel = "tests/test_installed_wheel.py"
    assert {
        work_unit(f"{wheel}::test_version_comes_from_the_package_metadata"),
        work_unit(f"{wheel}::test_installed_service_serves_every_referenced_asset[prosody]"),
    } == {wheel}
    chat = "tests/test_chat_end_to_end.py::test_full_chat_both_ways"
    assert work_unit(f"{chat}[prosody]") == f"{chat}[prosody]"
    assert work_unit(f"{chat}[ejabberd]") == f"{chat}[ejabberd]"
