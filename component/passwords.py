"""Admin passwords: argon2id hashes, computed on a small pool of worker threads.

argon2id is slow and memory-hard on purpose (tens of milliseconds and 64 MiB per hash with
the library's recommended parameters). Run on the event loop, one login stalls every
patron's chat for that long, and a burst of logins stalls it for seconds. So the admin
page's login and the CLI's `admin add` / `admin password` hash through `PasswordWorkers`:
a few threads (argon2-cffi releases the GIL while it works) and a bounded waiting room.
An attempt that finds the waiting room full is refused at once (`PasswordsBusy`) rather
than queued without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeVar

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_THREADS",
    "HASHING",
    "PasswordWorkers",
    "PasswordsBusy",
    "check_password",
    "hash_password",
]

_T = TypeVar("_T")

# Two threads: enough to keep logins flowing on a small server, few enough that a burst of
# them leaves a core (and memory: 64 MiB each) for everything else.
DEFAULT_THREADS = 2
# Attempts that may wait for a thread; beyond them an attempt is refused at once.
DEFAULT_BACKLOG = 8

# The parameters of new hashes, by the name `[web] password_hashing` gives them.
# "strong" is RFC 9106's second recommendation (3 passes over 64 MiB, 4 lanes), the
# library's default; "test" does almost no work and exists only so that test suites can
# log in many times without spending minutes hashing.
HASHING: Mapping[str, Parameters] = MappingProxyType(
    {"strong": profiles.RFC_9106_LOW_MEMORY, "test": profiles.CHEAPEST}
)

# The default hasher: it also verifies every hash, whatever it was made with (a hash
# carries its own parameters). Stateless and thread-safe.
_hasher = PasswordHasher.from_parameters(HASHING["strong"])


def _hasher_for(hashing: str) -> PasswordHasher:
    return _hasher if hashing == "strong" else PasswordHasher.from_parameters(HASHING[hashing])


def hash_password(password: str, hashing: str = "strong") -> str:
    """An argon2id hash of `password`, with the parameters named by `hashing` (a key of
    `HASHING`, as `[web] password_hashing` gives it). Blocking: async code calls
    `PasswordWorkers.hash`; tests and the demo's one-off setup call it directly."""
    return _hasher_for(hashing).hash(password)


def check_password(stored: str, password: str) -> bool:
    """Whether `password` matches the hash `stored` (False for a malformed hash).
    Blocking: async code calls `PasswordWorkers.verify`."""
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


class PasswordsBusy(Exception):
    """Every worker is busy and the waiting room is full: try again shortly."""


class PasswordWorkers:
    """Hash and verify passwords off the event loop, at most `threads` at a time and with
    at most `backlog` more waiting.

    One instance per process part that needs it: the web app creates one when it starts
    (and closes it on cleanup), the CLI one per command. Call only from the event loop
    thread: the counters are plain integers guarded by running there.
    """

    def __init__(
        self,
        threads: int = DEFAULT_THREADS,
        backlog: int = DEFAULT_BACKLOG,
        hashing: str = "strong",
    ) -> None:
        if threads < 1 or backlog < 0:
            raise ValueError("threads must be at least 1 and backlog at least 0")
        # The parameters of the hashes `hash` makes (verifying reads them from the hash).
        self.hashing = hashing
        self.threads = threads
        self.capacity = threads + backlog
        self.in_flight = 0  # jobs accepted and not finished (running or waiting)
        self.running = 0  # jobs a thread is working on now
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="refdesk-passwords"
        )

    @property
    def full(self) -> bool:
        """Whether the next job would be refused; lets a caller skip work that is only
        worth doing if the job can run."""
        return self.in_flight >= self.capacity

    async def hash(self, password: str) -> str:
        """Hash a new password (CLI `admin add` and `admin password`)."""
        return await self.run(hash_password, password, self.hashing)

    async def verify(self, stored: str, password: str) -> bool:
        """Check a password at login; raises PasswordsBusy when saturated."""
        return await self.run(check_password, stored, password)

    async def run(self, job: Callable[..., _T], *args: object) -> _T:
        """Run `job(*args)` on a worker thread and wait for its result. Raises
        PasswordsBusy at once, without running it, when `capacity` jobs are in flight.

        The slot is given back when the thread is done with the job, not when the caller
        stops waiting: a cancelled caller (a client that hung up) cannot make room for
        more work than the threads can do.
        """
        if self.full:
            raise PasswordsBusy
        loop = asyncio.get_running_loop()
        self.in_flight += 1

        def started() -> None:
            self.running += 1

        def work() -> _T:
            loop.call_soon_threadsafe(started)
            return job(*args)

        def finished(future: concurrent.futures.Future[_T]) -> None:
            # A loop that has already closed has no counters left to care about.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._release, not future.cancelled())

        try:
            future = self._pool.submit(work)
        except RuntimeError:  # the pool was shut down: the process is stopping
            self.in_flight -= 1
            raise PasswordsBusy from None
        future.add_done_callback(finished)
        return await asyncio.wrap_future(future)

    def _release(self, ran: bool) -> None:
        self.in_flight -= 1
        if ran:
            self.running -= 1

    def close(self) -> None:
        """Stop taking jobs and drop the waiting ones (called when the app shuts down);
        a hash already running finishes in its thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)
