"""Files refdesk writes are its owner's alone; files it reads open to others are reported
at start (real files, real SQLite, the real service)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from component.config import write_config_toml
from component.config_loader import load_config
from component.demo import _load_state, write_demo_config
from component.files import foreign_owner, write_private
from component.prosody import LocalProsody, free_port
from component.runner import Refdesk
from component.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022: files would be world-readable unless created otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("usual_umask")
async def test_a_new_database_and_its_wal_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "refdesk.sqlite3"
    store = await Store.open(path)
    try:
        await store.groups.add("g", "G", datetime.now(UTC))
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert name.exists(), name
            assert _mode(name) == 0o600, (name, oct(_mode(name)))
    finally:
        await store.close()


def _config_file(tmp: Path, mode: int) -> Path:
    path = tmp / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {"domain": "desk.localhost", "secret": "s3cret", "port": free_port()},
                "web": {"port": free_port()},
                "storage": {"path": "db.sqlite3"},
            }
        ),
        "utf-8",
    )
    path.chmod(mode)
    return path


async def _start_and_stop(config_path: Path) -> None:
    refdesk = Refdesk(load_config(config_path))
    await refdesk.start()
    await refdesk.stop()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "open to other users" in r.getMessage()
    ]


async def test_start_warns_about_a_config_or_database_others_can_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config_file(tmp_path, 0o644)
    db = tmp_path / "db.sqlite3"
    db.touch()
    db.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        await _start_and_stop(config)
    warnings = _warnings(caplog)
    assert len(warnings) == 2, warnings
    assert any(str(config) in w and "config file" in w and "chmod 600" in w for w in warnings)
    assert any(str(db) in w and "database" in w for w in warnings)

    caplog.clear()
    config.chmod(0o600)
    db.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        await _start_and_stop(config)
    assert _warnings(caplog) == []


@pytest.mark.usefixtures("usual_umask")
def test_demo_config_state_and_directory_are_private(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    workdir.mkdir(mode=0o755)
    state = _load_state(workdir, 8080)
    assert _mode(workdir) == 0o700
    assert _mode(workdir / "demo.json") == 0o600
    config = write_demo_config(workdir, state, 8080)
    assert _mode(config) == 0o600
    assert load_config(config).xmpp.secret == state["secret"]
    # Written again over an old world-readable file: still private.
    config.chmod(0o644)
    assert _mode(write_demo_config(workdir, state, 8080)) == 0o600


async def test_a_config_readable_by_the_services_own_group_is_not_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The deployment guide installs the config as root:refdesk 0640 (the service reads it
    through its group): that is private to the service and must not be reported, let alone
    with advice (chmod 600) that would lock the service out of its own config. Group
    write, or read by a group that is not the service's, is still reported."""
    config = _config_file(tmp_path, 0o640)
    os.chown(config, -1, os.getegid())
    with caplog.at_level(logging.WARNING):
        await _start_and_stop(config)
    assert _warnings(caplog) == []

    caplog.clear()
    config.chmod(0o660)
    with caplog.at_level(logging.WARNING):
        await _start_and_stop(config)
    assert [w for w in _warnings(caplog) if "config file" in w], _warnings(caplog)


def test_a_database_owned_by_another_user_is_named_in_the_error(tmp_path: Path) -> None:
    """Running a `refdesk` command as root before the service's first start creates the
    database as root's (0600), and the service then cannot open it: the error says whose
    the file is and who refdesk runs as, not only SQLite's "unable to open database file"."""
    if os.geteuid() == 0:
        foreign = tmp_path / "db.sqlite3"
        foreign.touch()
        os.chown(foreign, 65534, -1)  # nobody
    else:
        foreign = Path("/etc/passwd")  # root's
    hint = foreign_owner(foreign)
    assert hint is not None and "belongs to" in hint and "runs as" in hint, hint
    own = tmp_path / "own.sqlite3"
    own.touch()
    assert foreign_owner(own) is None
    assert foreign_owner(tmp_path / "missing.sqlite3") is None


@pytest.mark.usefixtures("usual_umask")
def test_the_demo_prosody_config_is_private_even_over_an_old_open_file(tmp_path: Path) -> None:
    """The Prosody config the demo writes holds the component secret. Written over a file
    left world-readable (an older run, a copy), it must still come out 0600: opening the
    old file with O_CREAT keeps the old mode."""
    prosody = LocalProsody(
        tmp_path / "prosody",
        component_domain="desk.localhost",
        component_secret="s3cret-" + "x" * 20,
        c2s_port=free_port(),
        component_port=free_port(),
    )
    prosody.workdir.mkdir()
    prosody.config_path.write_text("-- old\n", "utf-8")
    prosody.config_path.chmod(0o644)
    path = prosody.write_config()
    assert _mode(path) == 0o600
    assert "s3cret-" in path.read_text("utf-8")


@pytest.mark.usefixtures("usual_umask")
def test_a_private_file_written_over_a_leftover_partial_file_is_private(tmp_path: Path) -> None:
    """A partial file left by an earlier writer (same name, world-readable) is never
    written into: the secret would sit in an open file until a chmod after the write."""
    target = tmp_path / "refdesk.toml"
    leftover = target.with_name(f".{target.name}.partial-{os.getpid()}")
    leftover.write_text("old", "utf-8")
    leftover.chmod(0o644)
    seen: list[int] = []
    real_fdopen = os.fdopen

    def watching_fdopen(fd: int, *args: object, **kwargs: object) -> object:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fdopen", watching_fdopen)
        write_private(target, "secret = 1\n")
    assert seen == [0o600]
    assert _mode(target) == 0o600 and target.read_text("utf-8") == "secret = 1\n"


@pytest.mark.usefixtures("usual_umask")
async def test_the_bench_config_is_private(tmp_path: Path) -> None:
    """The benchmarks' refdesk config holds the component secret too."""
    from bench.stack import BenchStack

    async with BenchStack() as stack:
        path = stack.write_config()
        assert _mode(path) == 0o600
