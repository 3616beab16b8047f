"""Soak with faults: many chats for minutes while Prosody is restarted, killed (SIGKILL),
closes refdesk's stream on its own, and refdesk is killed (SIGKILL) and started again;
counts lines lost, duplicated and out of order both ways.

    python -m bench.soak [--quick] [--chats 200] [--minutes 3] [--interval 2]

refdesk runs as its own process (`python -m component.cli --config F run`) on a throwaway
Prosody (`LocalProsody`, Nagle off). Operators are real XMPP clients (`BenchOperator`, with
a reconnect loop added here); patrons are real WebSockets that, after a drop, reconnect
with `hello` + resume token + `last_seq` and resend every line not acknowledged yet (same
client id: refdesk is idempotent on it). Each patron sends ``m:<chat>.<k>`` every
`--interval` seconds; the operator answers each (first arrival only) with ``r:<chat>.<k>``.

Faults, once each, at these shares of the sending time: `LocalProsody.restart()` (graceful)
at 20 %; SIGKILL of Prosody and a new start on the same data at 40 %; at 60 % a server-side
close of the component stream (Prosody runs with `component_conflict_resolve = "kick_old"`
and a second component connection with the same secret makes Prosody close refdesk's
stream with a `conflict` stream error, whatever refdesk had written after that point
unread); SIGKILL of refdesk and a new start on the same config and database at 80 %. After
the sending stops, a drain (until nothing is on its way, at most --drain s), then the
counts and `PRAGMA integrity_check` on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from slixmpp import ComponentXMPP, Message

from bench.common import (
    base_parser,
    command_line,
    facts_markdown,
    filesystem_of,
    finish,
    fmt,
    machine_facts,
    md_table,
    raise_nofile,
)
from bench.patrons import patron_address
from bench.stack import COMPONENT_DOMAIN, QUEUE, BenchStack, stop_child
from bench.xmpp_clients import BenchOperator, token_of

PASSWORD = "bench-password"
TEXT = "soak line"


def _kind(token: str) -> tuple[int, int]:
    chat, _, k = token.partition(".")
    return int(chat), int(k)


class SoakOperator(BenchOperator):
    """A `BenchOperator` that reconnects after the server goes away, records every patron
    line it gets (with the stanza id) and every answer it sends, and notes error stanzas."""

    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline  # loop.time() after which it stops trying to reconnect
        self.got: dict[str, list[str]] = {}  # patron token -> stanza ids received
        self.order: dict[int, list[int]] = {}  # chat -> k in order of first arrival
        self.answers: dict[str, str] = {}  # answer token -> stanza id (sent while online)
        self.answered_at: dict[str, float] = {}  # answer token -> time.monotonic() sent
        self.deferred: list[tuple[str, str]] = []  # (guest, token) answered after reconnect
        self.errors: dict[str, str] = {}  # stanza id -> error condition
        self.online = False
        self.stopping = False
        self.reconnects = 0
        self.dead: list[Any] = []
        self.guests: list[str] = []  # chats this operator accepted
        self.probes: list[str] = []  # stanza ids of lines sent while refdesk was down
        self.offline_since: float | None = None
        self.downtimes: list[float] = []

    async def connect(self, timeout: float = 20) -> None:
        await super().connect(timeout)
        xmpp = self.xmpp
        assert xmpp is not None
        self.online = True
        xmpp.add_event_handler("message_error", self._on_error)
        xmpp.add_event_handler("disconnected", lambda _e: self._on_disconnected(xmpp))
        pending, self.deferred = self.deferred, []
        for guest, token in pending:
            self._answer(guest, token)

    def _on_disconnected(self, xmpp: Any) -> None:
        if xmpp is not self.xmpp or self.stopping:
            return
        self.online = False
        self.offline_since = time.monotonic()
        asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        loop = asyncio.get_running_loop()
        # Keep the dead client referenced: its pending send task would otherwise be
        # garbage-collected with a "Task was destroyed but it is pending" warning.
        self.dead.append(self.xmpp)
        self.xmpp = None
        while not self.stopping and loop.time() < self.deadline:
            await asyncio.sleep(0.5)
            try:
                await self.connect(timeout=10)
            except Exception:
                continue
            self.reconnects += 1
            if self.offline_since is not None:
                self.downtimes.append(time.monotonic() - self.offline_since)
            return

    def _on_error(self, msg: Message) -> None:
        self.errors[str(msg["id"])] = str(msg["error"]["condition"])

    def _answer(self, guest: str, token: str) -> None:
        if not self.online or self.xmpp is None:
            self.deferred.append((guest, token))
            return
        stanza_id = f"a-{token}"
        msg = self.xmpp.make_message(mto=guest, mbody=f"r:{token} answer", mtype="chat")
        msg["id"] = stanza_id
        msg.send()
        self.sent += 1
        self.answers[token] = stanza_id
        self.answered_at[token] = time.monotonic()

    def on_message(self, msg: Message) -> None:
        body: str = msg["body"]
        if body.startswith("m:"):
            token = token_of(body)
            first = token not in self.got
            self.got.setdefault(token, []).append(str(msg["id"]))
            if first:
                chat, k = _kind(token)
                self.order.setdefault(chat, []).append(k)
                self._answer(msg["from"].bare, token)
            return
        guest = msg["from"].bare
        if guest not in self.seen and self.mine(guest):
            self.guests.append(guest)
        super().on_message(msg)

    def probe(self) -> None:
        """One line to one of this operator's chats (sent while refdesk is down)."""
        if not self.online or self.xmpp is None or not self.guests:
            return
        stanza_id = f"down-{self.index}"
        msg = self.xmpp.make_message(
            mto=self.guests[0], mbody=f"down-probe {self.index}", mtype="chat"
        )
        msg["id"] = stanza_id
        msg.send()
        self.probes.append(stanza_id)


class SoakPatron:
    """One chat's WebSocket, reconnecting with the resume token after every drop."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, index: int) -> None:
        self.session = session
        self.index = index
        self.address = patron_address(index + 1)
        self.url = base_url.replace("http", "ws", 1) + f"/ws/{QUEUE}"
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.resume: str | None = None
        self.last_seq = 0
        self.seqs: set[int] = set()
        self.unacked: dict[str, str] = {}  # client id -> text, in sending order
        self.acked: dict[str, int] = {}  # client id -> seq
        self.sent: list[str] = []
        self.got: dict[str, list[int]] = {}  # answer token -> seqs received
        self.order: list[int] = []  # k of answers in order of first arrival
        self.probes_received = 0
        self.replayed = 0  # frames with a seq already seen (widget drops them)
        self.asked = False
        self.accepted = asyncio.Event()
        self.welcomed: asyncio.Future[dict[str, Any]] | None = None
        self.lock = asyncio.Lock()
        self.reconnects = 0
        self.resume_failed = 0
        self.errors: list[str] = []
        self.ended = False
        self.stopping = False
        self.reader: asyncio.Task[None] | None = None
        self.down_since: float | None = None
        self.downtimes: list[float] = []

    async def connect(self, timeout: float = 20) -> None:
        async with self.lock:
            self.welcomed = asyncio.get_running_loop().create_future()
            ws = await self.session.ws_connect(
                self.url,
                timeout=aiohttp.ClientWSTimeout(ws_close=3),
                headers={"X-Forwarded-For": self.address},
            )
            self.ws = ws
            self.reader = asyncio.create_task(self._read(ws))
            hello: dict[str, Any] = {"type": "hello", "last_seq": self.last_seq}
            if self.resume:
                hello["resume"] = self.resume
            await ws.send_str(json.dumps(hello))
            welcome = await asyncio.wait_for(self.welcomed, timeout)
            if self.resume and not welcome.get("resumed"):
                self.resume_failed += 1
            self.resume = welcome.get("resume") or self.resume
            for cid, text in list(self.unacked.items()):
                await ws.send_str(json.dumps({"type": "message", "id": cid, "text": text}))

    async def ask(self, timeout: float) -> None:
        self.asked = True
        await self.send_line("open", f"soak chat {self.index}: first question")
        await asyncio.wait_for(self.accepted.wait(), timeout)

    async def send_line(self, cid: str, text: str) -> None:
        self.unacked[cid] = text
        self.sent.append(cid)
        async with self.lock:
            ws = self.ws
            if ws is None or ws.closed:
                return  # resent after the reconnection
            with contextlib.suppress(Exception):
                await ws.send_str(json.dumps({"type": "message", "id": cid, "text": text}))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(Exception):
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                self._frame(json.loads(msg.data))
        if ws is self.ws and not self.stopping:
            self.ws = None
            self.down_since = time.monotonic()
            asyncio.get_running_loop().create_task(self._reconnect())

    def _frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        seq = frame.get("seq")
        # As the widget does (docs/widget-protocol.md): last_seq is the highest seq of a
        # `message` or `ended` frame (an ack's seq is the patron's own line's).
        if kind in ("message", "ended") and isinstance(seq, int):
            if seq in self.seqs:
                self.replayed += 1
                return
            self.seqs.add(seq)
            self.last_seq = max(self.last_seq, seq)
        if kind == "message":
            text = frame.get("text", "")
            sender = frame.get("from")
            if sender == "operator" and text.startswith("down-probe"):
                self.probes_received += 1
            elif sender == "operator" and text.startswith("r:"):
                token = token_of(text)
                if token not in self.got:
                    self.order.append(_kind(token)[1])
                self.got.setdefault(token, []).append(seq if isinstance(seq, int) else -1)
            elif sender == "system" and self.asked:
                self.accepted.set()
        elif kind == "ack":
            cid = str(frame.get("id"))
            self.unacked.pop(cid, None)
            self.acked.setdefault(cid, int(frame.get("seq") or 0))
        elif kind == "welcome":
            if self.welcomed is not None and not self.welcomed.done():
                self.welcomed.set_result(frame)
        elif kind == "error":
            if len(self.errors) < 5:
                self.errors.append(f"{frame.get('code')}: {frame.get('text')}"[:200])
        elif kind == "ended":
            self.ended = True

    async def _reconnect(self) -> None:
        for _ in range(600):  # bounded: 600 × ≥0.3 s
            if self.stopping:
                return
            await asyncio.sleep(0.3 + random.random() * 0.3)
            try:
                await self.connect(timeout=10)
            except Exception:
                continue
            self.reconnects += 1
            if self.down_since is not None:
                self.downtimes.append(time.monotonic() - self.down_since)
            return

    async def close(self) -> None:
        self.stopping = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader


async def available_or_none(stack: BenchStack) -> int | None:
    try:
        return await asyncio.wait_for(stack.operators_available(), 5)
    except Exception:
        return None


async def wait_recovered(
    stack: BenchStack, operators: list[SoakOperator], patrons: list[SoakPatron], began: float
) -> dict[str, float]:
    """Seconds from `began` until refdesk counts every operator available again, and until
    every patron socket is back (bounded by 120 s)."""
    loop = asyncio.get_running_loop()
    out: dict[str, float] = {"operators_s": math.nan, "patrons_s": math.nan}
    deadline = loop.time() + 120
    while loop.time() < deadline and (
        math.isnan(out["operators_s"]) or math.isnan(out["patrons_s"])
    ):
        if math.isnan(out["operators_s"]) and await available_or_none(stack) == len(operators):
            out["operators_s"] = time.monotonic() - began
        if math.isnan(out["patrons_s"]) and all(
            p.ws is not None and not p.ws.closed for p in patrons
        ):
            out["patrons_s"] = time.monotonic() - began
        await asyncio.sleep(0.2)
    return out


def integrity(db: Path) -> str:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    return "; ".join(str(r[0]) for r in rows)[:500]


async def close_component_stream(host: str, port: int, secret: str) -> None:
    """Make Prosody close refdesk's component stream: a second component connection with
    the same secret, which Prosody (component_conflict_resolve = "kick_old") accepts by
    closing the first one with a `conflict` stream error. The intruder leaves at once."""
    intruder = ComponentXMPP(COMPONENT_DOMAIN, secret)  # type: ignore[no-untyped-call]
    started = asyncio.Event()
    intruder.add_event_handler("session_start", lambda _event: started.set())
    intruder.connect(host, port)
    try:
        await asyncio.wait_for(started.wait(), 10)
    finally:
        intruder.abort()


def out_of_order(sequences: list[list[int]]) -> int:
    """Arrivals (first arrival of each line) whose number is below one already seen."""
    count = 0
    for seq in sequences:
        top = -1
        for k in seq:
            if k < top:
                count += 1
            top = max(top, k)
    return count


async def run(
    *,
    chats: int,
    operators: int,
    duration: float,
    interval: float,
    drain: float,
    keep: bool = False,
) -> dict[str, Any]:
    raise_nofile()
    loop = asyncio.get_running_loop()
    max_chats = math.ceil(chats / operators) * 2 + 10
    result: dict[str, Any] = {
        "chats": chats,
        "operators": operators,
        "duration_s": duration,
        "interval_s": interval,
        "drain_s": drain,
        "faults": {},
    }
    async with BenchStack(keep=keep) as stack:
        # A second connection for the component's domain replaces the first: how the soak
        # makes the server close refdesk's stream (see close_component_stream).
        prosody = await stack.start_prosody(
            extra_config=('component_conflict_resolve = "kick_old"',)
        )
        jids = await stack.register([f"op{i}" for i in range(operators)], PASSWORD)
        stack.write_config()
        await stack.seed(jids, max_chats)
        await stack.start_refdesk()
        result["facts"] = machine_facts(stack.prosody_config)
        result["facts"]["refdesk database"] = (
            f"{filesystem_of(stack.db_path)}; SQLite WAL, synchronous=FULL as refdesk opens it"
        )
        # Generous reconnect window: the whole run plus the drain plus a minute.
        give_up = loop.time() + duration + drain + 600
        ops = [
            SoakOperator(
                jid, PASSWORD, prosody.host, prosody.c2s_port, n, operators, deadline=give_up
            )
            for n, jid in enumerate(jids)
        ]
        await asyncio.gather(*(op.connect() for op in ops))
        await stack.wait_operators(operators)

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        patrons = [SoakPatron(session, stack.url, i) for i in range(chats)]
        try:
            began = time.monotonic()
            sem = asyncio.Semaphore(20)
            failures: list[str] = []

            async def open_one(p: SoakPatron) -> None:
                async with sem:
                    try:
                        await p.connect()
                        await p.ask(120)
                    except Exception as exc:
                        failures.append(f"chat {p.index}: {type(exc).__name__} {exc}"[:200])

            await asyncio.gather(*(open_one(p) for p in patrons))
            result["open_s"] = time.monotonic() - began
            result["open_failures"] = failures
            print(f"(soak: {chats - len(failures)} chats open in {result['open_s']:.1f} s)",
                  file=sys.stderr)  # fmt: skip

            rng = random.Random(3)
            phases = [rng.uniform(0, interval) for _ in patrons]
            t0 = loop.time() + 0.1
            end = t0 + duration

            async def pace(p: SoakPatron, phase: float) -> None:
                for k in range(10**6):
                    at = t0 + phase + k * interval
                    if at >= end:
                        return
                    await asyncio.sleep(max(0.0, at - loop.time()))
                    await p.send_line(f"{p.index}.{k}", f"m:{p.index}.{k} {TEXT} {k}")

            async def at(share: float, name: str) -> float:
                await asyncio.sleep(max(0.0, t0 + share * duration - loop.time()))
                print(f"(soak: {name})", file=sys.stderr)
                return time.monotonic()

            async def recovered(name: str, at_s: float, down_since: float) -> None:
                fault: dict[str, Any] = {
                    "at_s": at_s - began,
                    "down_s": time.monotonic() - down_since,
                }
                fault.update(await wait_recovered(stack, ops, patrons, at_s))
                result["faults"][name] = fault

            async def faults() -> None:
                name = "prosody restart"
                t = await at(0.20, name)
                await prosody.restart()
                await recovered(name, t, t)

                name = "prosody SIGKILL + start"
                t = await at(0.40, name)
                await prosody.stop(graceful=False)
                result["prosody_killed_at"] = t
                await asyncio.sleep(0.5)
                await prosody.start()
                await recovered(name, t, t)

                name = "server closes the component stream"
                t = await at(0.60, name)
                await close_component_stream(prosody.host, prosody.component_port, stack.secret)
                await recovered(name, t, t)

                name = "refdesk SIGKILL + restart"
                t = await at(0.80, name)
                assert stack.refdesk is not None
                stack.refdesk.send_signal(signal.SIGKILL)
                await stack.refdesk.wait()
                killed_at = time.monotonic()
                # Each operator sends one line while refdesk is down: Prosody must answer it
                # with an error stanza (the operator is told it was not delivered).
                for op in ops:
                    op.probe()
                await asyncio.sleep(0.3)
                await stack.start_refdesk()
                await recovered(name, t, killed_at)

            await asyncio.gather(
                faults(), *(pace(p, ph) for p, ph in zip(patrons, phases, strict=True))
            )
            print(f"(soak: sending done; draining, at most {drain:.0f} s)", file=sys.stderr)
            drained_from = loop.time()
            while loop.time() - drained_from < drain and not settled(
                count(ops, patrons, result.get("prosody_killed_at"))
            ):
                await asyncio.sleep(0.2)
            result["drained_s"] = loop.time() - drained_from
            result.update(count(ops, patrons, result.get("prosody_killed_at")))
            result["log"] = stack.log_problems()
            result["first_log_problem"] = stack.first_problem()
        finally:
            await asyncio.gather(*(p.close() for p in patrons), return_exceptions=True)
            await session.close()
            for op in ops:
                op.stopping = True
            await asyncio.gather(*(op.disconnect() for op in ops), return_exceptions=True)
        await stop_child(stack.refdesk)
        stack.refdesk = None
        result["integrity_check"] = integrity(stack.db_path)
    return result


def settled(counts: dict[str, Any]) -> bool:
    """Whether nothing is on its way any more: every line acknowledged to a patron reached
    an operator and was answered, and every answer reached its patron (except those that
    died on the operator's own stream with Prosody, which never come). The drain after
    sending waits for this, not for a fixed time."""
    to_op, to_pat = counts["to_operator"], counts["to_patron"]
    return (
        to_op["lost"] == 0
        and to_pat["deferred_unsent"] == 0
        and to_pat["lost"] == to_pat["lost_on_client_stream_at_prosody_kill"]
    )


def count(
    ops: list[SoakOperator], patrons: list[SoakPatron], prosody_killed_at: float | None = None
) -> dict[str, Any]:
    got_op: dict[str, list[str]] = {}
    answers: dict[str, str] = {}
    answered_at: dict[str, float] = {}
    errors: dict[str, str] = {}
    for op in ops:
        got_op.update(op.got)
        answers.update(op.answers)
        answered_at.update(op.answered_at)
        errors.update(op.errors)
    # patron → operator
    sent = [cid for p in patrons for cid in p.sent if cid != "open"]
    acked = {cid for p in patrons for cid in p.acked if cid != "open"}
    lost_p = sorted(cid for cid in acked if cid not in got_op)
    dup_same = sum(1 for ids in got_op.values() if len(ids) > 1 and len(set(ids)) == 1)
    dup_diff = sum(1 for ids in got_op.values() if len(set(ids)) > 1)
    to_op = {
        "sent": len(sent),
        "acked": len(acked),
        "unacked_at_end": len(sent) - len(acked),
        "received": len(got_op),
        "lost": len(lost_p),
        "lost_examples": lost_p[:10],
        "received_not_acked": sum(1 for cid in got_op if cid not in acked),
        "duplicated": dup_same + dup_diff,
        "duplicated_same_stanza_id": dup_same,
        "duplicated_new_stanza_id": dup_diff,
        "duplicated_examples": [(t, ids) for t, ids in got_op.items() if len(ids) > 1][:10],
        "out_of_order": out_of_order([op.order[c] for op in ops for c in op.order]),
    }
    # operator → patron
    got_pat: dict[str, list[int]] = {}
    for p in patrons:
        got_pat.update(p.got)
    refused = {t for t, sid in answers.items() if sid in errors}
    counted = {t for t in answers if t not in refused}
    lost_o = sorted(t for t in counted if t not in got_pat)
    # Lines an operator's client had just written on its own stream when Prosody was
    # SIGKILLed: the client-to-server leg has no acknowledgement (no stream management in
    # these clients), so they die with the server before refdesk could see them.
    at_kill = [
        t
        for t in lost_o
        if prosody_killed_at is not None and 0 <= prosody_killed_at - answered_at[t] < 1.0
    ]
    dup_seq = sum(1 for seqs in got_pat.values() if len(set(seqs)) > 1)
    to_pat = {
        "sent": len(answers),
        "refused_with_error": len(refused),
        "error_conditions": sorted(set(errors.values())),
        "refused_but_received": sum(1 for t in refused if t in got_pat),
        "deferred_unsent": sum(len(op.deferred) for op in ops),
        "received": len(got_pat),
        "lost": len(lost_o),
        "lost_examples": lost_o[:10],
        "lost_on_client_stream_at_prosody_kill": len(at_kill),
        "duplicated": dup_seq,
        "duplicated_new_seq": dup_seq,
        "replayed_same_seq": sum(p.replayed for p in patrons),
        "out_of_order": out_of_order([p.order for p in patrons]),
    }
    probes = [sid for op in ops for sid in op.probes]
    to_pat["down_probes_sent"] = len(probes)
    to_pat["down_probes_refused"] = sum(1 for sid in probes if sid in errors)
    to_pat["down_probes_received"] = sum(p.probes_received for p in patrons)
    return {
        "to_operator": to_op,
        "to_patron": to_pat,
        "patron_reconnects": sum(p.reconnects for p in patrons),
        "patron_resume_failed": sum(p.resume_failed for p in patrons),
        "patron_errors": [e for p in patrons for e in p.errors][:10],
        "patrons_ended": sum(p.ended for p in patrons),
        "operator_reconnects": sum(op.reconnects for op in ops),
        "operator_unexpected": [u for op in ops for u in op.unexpected][:10],
    }


def markdown(r: dict[str, Any]) -> str:
    a, b = r.get("to_operator", {}), r.get("to_patron", {})

    def g(d: dict[str, Any], key: str) -> str:
        value = d.get(key)
        return f"{value:,}" if isinstance(value, int) else "—"

    rows = [
        ["lines sent", g(a, "sent"), g(b, "sent")],
        ["acknowledged (patron: ack with seq) / not refused (operator: no error stanza)",
         g(a, "acked"), f"{len(b) and b['sent'] - b['refused_with_error']:,}"],
        ["refused with an error stanza (refdesk down; not acknowledged)", "—",
         g(b, "refused_with_error")],
        ["not acknowledged at the end", g(a, "unacked_at_end"), "—"],
        ["received", g(a, "received"), g(b, "received")],
        ["**lost** (acknowledged, never received)", g(a, "lost"), g(b, "lost")],
        ["— of which: written by the operator's client just before Prosody's SIGKILL "
         "(< 1 s; never reached refdesk)", "—", g(b, "lost_on_client_stream_at_prosody_kill")],
        ["**duplicated**", g(a, "duplicated"), g(b, "duplicated")],
        ["— of which: same stanza id twice / stored twice (new seq)",
         f"{g(a, 'duplicated_same_stanza_id')} / {g(a, 'duplicated_new_stanza_id')}",
         f"— / {g(b, 'duplicated_new_seq')}"],
        ["replays of a seq already received (dropped by seq, as the widget does)", "—",
         g(b, "replayed_same_seq")],
        ["**out of order**", g(a, "out_of_order"), g(b, "out_of_order")],
    ]  # fmt: skip
    fault_rows = [
        [name, fmt(f["at_s"]), fmt(f["down_s"]), fmt(f.get("operators_s", math.nan)),
         fmt(f.get("patrons_s", math.nan))]
        for name, f in r.get("faults", {}).items()
    ]  # fmt: skip
    fault_table = md_table(
        ["fault", "at s", "down s", "operators back after s", "patrons back after s"], fault_rows
    )
    log = r.get("log", {})
    faults = "Prosody restart and SIGKILL, server-side stream close, refdesk SIGKILL"
    return f"""## Soak with faults: {r["chats"]} chats; {faults}

Command: `{command_line()}`

{facts_markdown(r["facts"])}

Method: refdesk as its own process on a throwaway Prosody; {r["operators"]} operators as XMPP
clients (reconnecting by themselves), {r["chats"]} patrons as WebSockets that reconnect with
`hello` + resume token + `last_seq` and resend every unacknowledged client id. Every chat
sends one numbered line every {r["interval_s"]:g} s for {r["duration_s"]:g} s; the operator
answers each (first arrival) with a numbered line. Faults, at these shares of the sending
time: Prosody restarted gracefully (20 %); Prosody SIGKILLed and started again on the same
data (40 %); Prosody closing refdesk's component stream itself (60 %: a second component
connection with the same secret and `component_conflict_resolve = "kick_old"`, so Prosody
ends refdesk's stream with a `conflict` stream error); refdesk SIGKILLed and started again
on the same config and database (80 %); then a drain until nothing was on its way (at most
{r["drain_s"]:g} s).
{len(r.get("open_failures", []))} chats failed to open ({fmt(r.get("open_s", math.nan))} s to
open them all).

{md_table(["", "patron → operator", "operator → patron"], rows)}

Faults (seconds from the start of the opening phase; "operators back" = refdesk's status
endpoint counts every operator available again; "patrons back" = every socket open again):

{fault_table}

- patron reconnections: {r.get("patron_reconnects", 0):,}; resume refused (new chat):
  {r.get("patron_resume_failed", 0):,}; chats ended: {r.get("patrons_ended", 0):,};
  operator reconnections: {r.get("operator_reconnects", 0):,}
- lines sent by operators while refdesk was down (one per operator, right after the
  SIGKILL): {b.get("down_probes_sent", 0)}; answered with an error stanza:
  {b.get("down_probes_refused", 0)}; reached a patron anyway: {b.get("down_probes_received", 0)}.
  (The soak's own answers are sent only on receipt of a patron line, which cannot happen
  while refdesk is down, so the table's "refused" row only counts these cases if any.)
- operator error conditions seen: {", ".join(b.get("error_conditions", [])) or "none"};
  refused lines that still arrived: {b.get("refused_but_received", 0)}
- patron error frames (first ones): {r.get("patron_errors") or "none"}
- refdesk log: {log.get("errors", 0)} ERROR, {log.get("warnings", 0)} WARNING lines,
  {log.get("tracebacks", 0)} tracebacks; first: `{(r.get("first_log_problem") or "none")[:200]}`
- `PRAGMA integrity_check` after the run: **{r.get("integrity_check", "?")}**

How the counts are made: a patron line counts as sent to the operator once refdesk acked
it with a seq (it is committed); an operator line counts unless Prosody or refdesk
answered its stanza id with an error stanza ("refused": the operator's client is told,
as when refdesk is down and Prosody answers for the missing component). Duplicates
patron → operator show as the **same stanza id** (`rd-<chat>-<seq>`, set in
`component/xmpp.py` `send_patron_message`): a line counts as relayed (`note_relayed`) only
once a ping that refdesk wrote after it has come back through the server, and refdesk
resends every line not confirmed that way after it reconnects or restarts, on purpose
(at-least-once with a stable id), so a line in flight at a cut may come again; a client
that de-duplicates by id shows it once. Patron side: a line stored twice would show
as the same token under two seqs; a replayed frame as a seq already received (the widget
drops it by seq). Out of order: per chat, the first arrival of line k after a line > k.
"""


def main() -> None:
    parser = base_parser("bench.soak", __doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, help="concurrent chats (200; quick 10)")
    parser.add_argument("--minutes", type=float, help="sending time in minutes (3; quick 0.3)")
    parser.add_argument("--interval", type=float, help="seconds between lines of a chat (2)")
    parser.add_argument("--operators", type=int, help="operators (20; quick 3)")
    parser.add_argument(
        "--drain",
        type=float,
        help="the most seconds to wait after sending for lines on their way (20; quick 6)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    q = args.quick
    result = asyncio.run(
        run(
            chats=args.chats or (10 if q else 200),
            operators=args.operators or (3 if q else 20),
            duration=(args.minutes or (0.3 if q else 3.0)) * 60,
            interval=args.interval or (1.0 if q else 2.0),
            drain=args.drain if args.drain is not None else (6.0 if q else 20.0),
            keep=args.keep,
        )
    )
    finish(args, "soak", result, markdown(result))


if __name__ == "__main__":
    main()
