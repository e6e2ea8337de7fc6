"""A client of a daemon's session websockets, run by the tests as another local account (python FILE SOCKET).

It takes commands on its standard input, one a line, and answers each with one JSON line:

    flood terminal JOB N     open N terminals into JOB at once, then write 64 KiB frames into each it got
    flood port JOB PORT N    the same with N connections to PORT, one after the other (the job greets each)
    count                    the sessions still open, by kind
    echo JOB PORT            one key on JOB's terminal to its echo, and one line through a new connection
                             to PORT and back: the seconds each took
    quit                     close everything and leave

`flood` answers {"accepted": n, "refused": {close code: n}, "messages": [...]} once every session
has said whether the daemon took it: a terminal with its first heartbeat, a port with the job's
greeting; a refusal with its error and close code. Nothing here waits for a time to pass.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed

FRAME = b"x" * (64 * 1024)
GREETING = b"hello\n"
NOTHING_LISTENS = 4502  # the job's server may still be starting: that connection is tried again


class Client:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.open: dict[str, set[ClientConnection]] = {"terminal": set(), "port": set()}
        self.floods: set[asyncio.Task[None]] = set()

    async def connect(self, path: str) -> ClientConnection:
        return await unix_connect(self.socket_path, f"ws://tao{path}", open_timeout=60, max_size=None)

    async def flood(self, kind: str, job_id: str, count: int, port: int | None = None) -> dict[str, Any]:
        if kind == "terminal":
            outcomes = await asyncio.gather(*(self._open(kind, f"/v1/jobs/{job_id}/terminal") for _ in range(count)))
        else:  # one after the other: busybox's nc accepts one connection at a time, and drops a burst past its backlog
            outcomes = [await self._open(kind, f"/v1/jobs/{job_id}/ports/{port}") for _ in range(count)]
        refused = Counter(code for code, _ in outcomes if code is not None)
        return {
            "accepted": sum(1 for code, _ in outcomes if code is None),
            "refused": {str(code): n for code, n in refused.items()},
            "messages": sorted({message for code, message in outcomes if code is not None}),
        }

    async def _open(self, kind: str, path: str) -> tuple[int | None, str]:
        """(None, "") once the daemon took the session, else (its close code, its message)."""
        while True:
            ws = await self.connect(path)
            print(f"{kind} opened", file=sys.stderr, flush=True)
            first = await _first_word(ws, kind)
            print(f"{kind}: {first or 'taken'} ({ws.close_code})", file=sys.stderr, flush=True)
            if first is None:
                self.open[kind].add(ws)
                task = asyncio.ensure_future(self._write_forever(kind, ws))
                self.floods.add(task)
                return None, ""
            await ws.wait_closed()
            if ws.close_code != NOTHING_LISTENS:
                return ws.close_code, first

    async def _write_forever(self, kind: str, ws: ClientConnection) -> None:
        """64 KiB frames until the session ends; what comes back is read and dropped, so its end is seen at once."""
        reader = asyncio.ensure_future(_drain(ws))
        try:
            while True:
                await ws.send(FRAME)  # waits while the daemon does not read: it takes what the job takes
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            self.open[kind].discard(ws)

    def count(self) -> dict[str, int]:
        return {kind: len(sessions) for kind, sessions in self.open.items()}

    async def echo(self, job_id: str, port: int) -> dict[str, float]:
        async with await self.connect(f"/v1/jobs/{job_id}/terminal") as terminal:
            await _first_word(terminal, "terminal")
            started = time.monotonic()
            await terminal.send(b"k")
            while b"k" not in await _next_output(terminal):
                pass
            typed = time.monotonic() - started
        started = time.monotonic()
        async with await self.connect(f"/v1/jobs/{job_id}/ports/{port}") as connection:
            await connection.send(b"ping\n")
            line = b""
            while not line.endswith(b"ping\n"):
                line += await _next_output(connection)
        return {"terminal": typed, "port": time.monotonic() - started}

    async def quit(self) -> None:
        for task in self.floods:
            task.cancel()
        for sessions in self.open.values():
            for ws in list(sessions):
                await ws.close()


async def _first_word(ws: ClientConnection, kind: str) -> str | None:
    """None once the session shows it was taken (a heartbeat, the job's greeting); the error's message if refused."""
    received = b""
    while True:
        try:
            message = await ws.recv()
        except ConnectionClosed:
            return "closed without a word"
        if isinstance(message, bytes):
            received += message
            if kind == "port" and received.startswith(GREETING):
                return None
            continue
        word = json.loads(message)
        if word["type"] == "error":
            return str(word["message"])
        if kind == "terminal" and word["type"] == "heartbeat":
            return None


async def _drain(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


async def _next_output(ws: ClientConnection) -> bytes:
    while not isinstance(message := await ws.recv(), bytes):
        pass
    return message


async def main(socket_path: str) -> None:
    client = Client(socket_path)
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).split():
        command, *args = line
        if command == "flood" and args[0] == "terminal":
            answer: Any = await client.flood("terminal", args[1], int(args[2]))
        elif command == "flood":
            answer = await client.flood("port", args[1], int(args[3]), port=int(args[2]))
        elif command == "count":
            answer = client.count()
        elif command == "echo":
            answer = await client.echo(args[0], int(args[1]))
        else:
            break
        print(json.dumps(answer), flush=True)
    await client.quit()
    print(json.dumps("bye"), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
