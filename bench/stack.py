"""The servers a benchmark talks to: a throwaway Prosody (`LocalProsody`) and refdesk run
as its own process (`python -m component.cli --config FILE run`) with a config written here.

Everything binds 127.0.0.1 and lives in one temporary directory that `BenchStack` removes.
Child processes get SIGTERM from the kernel if the benchmark dies (PR_SET_PDEATHSIG), so an
interrupted run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.common import REPO
from bench.xmpp_clients import BenchOperator
from component.config import Config, write_config_toml
from component.config_loader import load_config
from component.files import write_private
from component.prosody import LocalProsody, free_port
from component.store import Store

COMPONENT_DOMAIN = "desk.localhost"
USER_DOMAIN = "localhost"
QUEUE = "ask"
# Prosody's file storage ("internal", the throwaway server's) keeps at most 10,000 archived
# messages per account by default; past that, mod_mam deletes the oldest 1 % and rewrites
# the whole archive file every 100 messages, so each message costs about 25 times as much
# (measured: 11 → 268 ms of Prosody CPU per chat opened). How soon an account gets there
# depends on the run's history, not on the load being measured: refdesk's ring-all offers
# put about two messages per chat opened in every operator's archive, so the operators got
# there during the capacity benchmark's 4,000-chat step while the floor's clients never
# did. The benchmarks' servers keep archiving every message (a cost both sides pay per
# message) but with a quota no run reaches.
ARCHIVE_ITEM_LIMIT = 10_000_000
PROSODY_BENCH_CONFIG = (f"storage_archive_item_limit = {ARCHIVE_ITEM_LIMIT}",)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


async def start_child(
    *args: str, log: Path, env: dict[str, str] | None = None, stdout_pipe: bool = False
) -> asyncio.subprocess.Process:
    """Start `args` from the repository root with its output going to `log` (or a pipe)."""
    with open(log, "ab") as out:
        return await asyncio.create_subprocess_exec(
            *args,
            cwd=str(REPO),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else out,
            stderr=out,
            env=env,
            preexec_fn=_die_with_parent,
        )


async def stop_child(process: asyncio.subprocess.Process | None, timeout: float = 10) -> None:
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def wait_http(url: str, timeout: float = 90) -> None:
    # Generous: a start-up on a machine loaded by other runs (the smoke tests start
    # several benchmarks at once) has taken over 30 s; on a healthy one it takes ~1 s.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    return
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise RuntimeError(f"nothing answered at {url} within {timeout} s")
            await asyncio.sleep(0.1)


class BenchStack:
    """A work directory, optionally a Prosody, and optionally a refdesk process.

    Use as ``async with BenchStack() as stack:``; everything is stopped and the directory
    removed at the end (pass keep=True to keep logs for inspection).
    """

    def __init__(self, *, keep: bool = False, db_dir: Path | None = None) -> None:
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix="refdesk-bench-"))
        # The database may live elsewhere (e.g. /dev/shm, to see what fsync costs).
        self.db_dir = (
            Path(tempfile.mkdtemp(prefix="refdesk-bench-db-", dir=db_dir)) if db_dir else None
        )
        self.secret = "bench-" + secrets.token_hex(8)
        self.prosody: LocalProsody | None = None
        self.refdesk: asyncio.subprocess.Process | None = None
        self.web_port = 0
        self.config_path = self.workdir / "refdesk.toml"
        self.db_path = (self.db_dir or self.workdir) / "refdesk.sqlite3"
        self.refdesk_log = self.workdir / "refdesk.log"
        self.gc_watch = False  # run refdesk under bench._gcwatch (GC pause report in its log)
        # With a path: refdesk also writes its loop-lag and GC timeline there (implies gc_watch).
        self.timeline: Path | None = None

    async def __aenter__(self) -> BenchStack:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await stop_child(self.refdesk)
        self.refdesk = None
        if self.prosody is not None:
            await self.prosody.stop()
        if self.keep:
            print(f"(bench files kept in {self.workdir})", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.db_dir is not None:
            shutil.rmtree(self.db_dir, ignore_errors=True)

    # --- Prosody ------------------------------------------------------------------------

    async def start_prosody(self, extra_config: tuple[str, ...] = ()) -> LocalProsody:
        """A throwaway Prosody (the demo's config, `PROSODY_BENCH_CONFIG` and
        `extra_config` added); called once per phase by every benchmark."""
        self.prosody = LocalProsody(
            self.workdir / "prosody",
            domain=USER_DOMAIN,
            component_domain=COMPONENT_DOMAIN,
            component_secret=self.secret,
            c2s_port=free_port(),
            component_port=free_port(),
            extra_config=(*PROSODY_BENCH_CONFIG, *extra_config),
        )
        await self.prosody.start()
        return self.prosody

    @property
    def prosody_pid(self) -> int | None:
        process = getattr(self.prosody, "_process", None)
        if process is not None:
            return int(process.pid)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            assert self.prosody is not None
            return int((self.prosody.workdir / "prosody.pid").read_text().strip())
        return None

    @property
    def prosody_config(self) -> Path | None:
        return self.prosody.config_path if self.prosody else None

    def archive_items(self) -> dict[str, int]:
        """Messages in each account's archive (mod_mam on Prosody's file storage writes one
        ``item(...);`` line per message in ``<data>/<host>/archive/<user>.list``); read by
        the capacity benchmark after each step."""
        if self.prosody is None:
            return {}
        # Prosody's data manager writes every non-word character of the host as %xx.
        host = re.sub(r"\W", lambda m: f"%{ord(m.group()):02x}", USER_DOMAIN)
        folder = self.prosody.data_path / host / "archive"
        counts = {}
        for path in folder.glob("*.list"):
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                counts[path.stem] = data.count(b"\nitem(") + data.startswith(b"item(")
        return counts

    async def register(self, users: list[str], password: str) -> list[str]:
        """Create accounts (in parallel batches); returns their bare JIDs."""
        assert self.prosody is not None
        for start in range(0, len(users), 20):
            batch = users[start : start + 20]
            await asyncio.gather(*(self.prosody.register(u, password) for u in batch))
        return [f"{u}@{USER_DOMAIN}" for u in users]

    # --- refdesk ------------------------------------------------------------------------

    def write_config(self, *, resume_ttl: float = 600.0) -> Path:
        """The refdesk config: component on our Prosody (or a dead port), web on a free
        port, the database in the work directory."""
        self.web_port = free_port()
        component_port = self.prosody.component_port if self.prosody else free_port()
        text = write_config_toml(
            {
                "xmpp": {
                    "domain": COMPONENT_DOMAIN,
                    "secret": self.secret,
                    "host": "127.0.0.1",
                    "port": component_port,
                    "reconnect_max_delay": 2.0,
                },
                "web": {
                    "host": "127.0.0.1",
                    "port": self.web_port,
                    "public_url": f"http://127.0.0.1:{self.web_port}",
                    # Each bench patron says who it is in X-Forwarded-For (see
                    # bench.patrons.patron_address), as patrons behind a proxy would.
                    "trusted_proxies": ["127.0.0.1"],
                },
                "storage": {"path": str(self.db_path)},
                "chat": {"resume_ttl": resume_ttl},
                **self._limits(),
            }
        )
        # It holds the component secret: 0600 from the start.
        write_private(self.config_path, text)
        load_config(self.config_path)  # fail here, clearly, if the keys have changed
        return self.config_path

    @staticmethod
    def _limits() -> dict[str, dict[str, object]]:
        """Rate limits far above what the benchmarks send (they are still checked on every
        chat and line), if this version of refdesk has them."""
        if "limits" not in {f.name for f in dataclasses.fields(Config)}:
            return {}
        return {
            "limits": {
                "chats_per_address": 1_000_000,
                "chats_per_network": 1_000_000,
                "messages_per_second": 1_000_000.0,
                "message_burst": 1_000_000,
            }
        }

    async def seed(
        self, operators: list[str], max_chats: int, queues: tuple[str, ...] = (QUEUE,)
    ) -> None:
        """A group, the queues and their operators (each in every queue), as the CLI
        would create them."""
        store = await Store.open(self.db_path)
        try:
            now = datetime.now(UTC)
            group = await store.groups.add("bench", "Bench library", now)
            ids = [
                (await store.queues.add(name, group.id, f"Ask a librarian ({name})", None, now)).id
                for name in queues
            ]
            for n, jid in enumerate(operators, 1):
                op = await store.operators.upsert(jid, f"Operator {n}", max_chats, now)
                for queue_id in ids:
                    await store.operators.assign(queue_id, op.id)
        finally:
            await store.close()

    async def desk_with_operators(
        self,
        count: int,
        max_chats: int,
        password: str,
        queues: tuple[str, ...] = (QUEUE,),
        profile_out: Path | None = None,
    ) -> tuple[list[BenchOperator], int]:
        """Prosody (if not started), `count` operator accounts, refdesk with them as
        operators of `queues`, their clients logged in and seen available by refdesk.
        Returns the operators' clients and refdesk's pid."""
        if self.prosody is None:
            await self.start_prosody()
        assert self.prosody is not None
        jids = await self.register([f"op{i}" for i in range(count)], password)
        if not self.config_path.exists():
            self.write_config()
        await self.seed(jids, max_chats, queues)
        pid = await self.start_refdesk(profile_out=profile_out)
        host, port = self.prosody.host, self.prosody.c2s_port
        ops = [BenchOperator(jid, password, host, port, n, count) for n, jid in enumerate(jids)]
        await asyncio.gather(*(op.connect() for op in ops))
        await self.wait_operators(count)
        return ops, pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    async def start_refdesk(self, *, profile_out: Path | None = None) -> int:
        """Start refdesk as its own process and wait until its web side answers; returns
        its pid. With `profile_out`, it runs under `bench._profiled` (cProfile switched on
        and off by SIGUSR1 / SIGUSR2)."""
        if self.gc_watch or self.timeline is not None:
            args = [
                sys.executable, "-m", "bench._gcwatch", "--",
                "--config", str(self.config_path), "run",
            ]  # fmt: skip
        elif profile_out is None:
            args = [sys.executable, "-m", "component.cli", "--config", str(self.config_path), "run"]
        else:
            args = [
                sys.executable,
                "-m",
                "bench._profiled",
                "--out",
                str(profile_out),
                "--",
                "--config",
                str(self.config_path),
                "run",
            ]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        if self.timeline is not None:
            env["BENCH_TIMELINE"] = str(self.timeline)
        self.refdesk = await start_child(*args, log=self.refdesk_log, env=env)
        try:
            await wait_http(f"{self.url}/api/queues/{QUEUE}/status")
        except RuntimeError:
            await stop_child(self.refdesk)
            raise RuntimeError(f"refdesk did not start:\n{self.log_tail()}") from None
        return self.refdesk.pid

    async def status(self, queue: str = QUEUE) -> dict[str, object]:
        url = f"{self.url}/api/queues/{queue}/status"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            data: dict[str, object] = await resp.json()
            return data

    async def operators_available(self, queue: str = QUEUE) -> int:
        """How many operators refdesk counts as taking chats in `queue`, from /metrics
        (the public status endpoint does not say: staff counts are not the public's)."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/metrics") as resp:
            text = await resp.text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "refdesk_operators_available"
                    and sample.labels.get("queue") == queue
                ):
                    return int(sample.value)
        return 0

    async def wait_operators(self, count: int, timeout: float = 60) -> None:
        """Until refdesk counts `count` operators taking chats (subscriptions done)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen: object = None
        while loop.time() < deadline:
            seen = await self.operators_available()
            if seen >= count:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(
            f"refdesk saw {seen} of {count} operators available after {timeout} s\n"
            + self.log_tail()
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.refdesk_log.read_text(errors="replace")
        except OSError:
            return "(no refdesk log)"
        return "\n".join(text.splitlines()[-lines:])

    def gc_report(self) -> str | None:
        """The line `bench._gcwatch` writes when refdesk exits, if it ran under it."""
        try:
            text = self.refdesk_log.read_text(errors="replace")
        except OSError:
            return None
        lines = [line for line in text.splitlines() if line.startswith("bench-gc:")]
        return lines[-1] if lines else None

    def log_problems(self) -> dict[str, int]:
        """Counts of ERROR / WARNING lines and tracebacks in refdesk's log."""
        try:
            text = self.refdesk_log.read_text(errors="replace")
        except OSError:
            return {}
        return {
            "errors": sum(" ERROR " in line for line in text.splitlines()),
            "warnings": sum(" WARNING " in line for line in text.splitlines()),
            "tracebacks": text.count("Traceback"),
        }

    def first_problem(self) -> str | None:
        try:
            text = self.refdesk_log.read_text(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if " ERROR " in line or " WARNING " in line:
                return line[:300]
        return None
