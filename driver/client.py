"""Socket client speaking i-PI's driver protocol, for any i-PI PES object.

It does what ``i-pi-py_driver``'s ``run_driver`` does (plain and batched requests), with
three differences that matter for long runs:

- when i-PI goes away without saying EXIT (killed, crashed, node lost), ``recv`` returns
  ``b''``: ``run_driver`` then loops on the empty header at 100 % CPU forever; this client
  notices, tries to reconnect for ``reconnect_wait`` seconds (a restarted i-PI reuses the
  address), and otherwise returns with a message;
- at start it waits up to ``connect_timeout`` seconds for i-PI to open its socket, so the
  driver can be launched together with i-PI;
- errors of the PES (e.g. an atom count that does not match the structure) propagate as
  exceptions instead of leaving i-PI waiting on a dead client.

The protocol (i-PI 3.3, ``ipi/interfaces/sockets.py``): 12-byte upper-case headers;
STATUS -> NEEDINIT | READY | HAVEDATA; INIT + int32 replica id + int32 length + string;
POSDATA + cell (9 doubles, vectors as columns) + inverse cell + int32 natoms + positions;
GETFORCE -> FORCEREADY + energy + int32 natoms + forces + virial + int32 length + extras;
EXIT. A ``batch_size:N`` token in the INIT string switches to batched POSDATA/GETFORCE.
"""

from __future__ import annotations

import socket
import sys
import time

import numpy as np

from ipi_dipole.errors import InputError

HDRLEN = 12


def _msg(text: str) -> bytes:
    return text.upper().ljust(HDRLEN).encode()


STATUS, INIT, POSDATA, GETFORCE, EXIT = (_msg(m) for m in ("STATUS", "INIT", "POSDATA", "GETFORCE", "EXIT"))
NEEDINIT, READY, HAVEDATA, FORCEREADY = (_msg(m) for m in ("NEEDINIT", "READY", "HAVEDATA", "FORCEREADY"))


class ServerGone(ConnectionError):
    """i-PI closed the connection without sending EXIT."""


class ProtocolError(RuntimeError):
    """i-PI sent something this client does not understand."""


def unix_socket_path(address: str, prefix: str = "/tmp/ipi_") -> str:
    """Path of i-PI's unix socket: ``prefix + address`` as i-PI builds it, or ``address``
    itself when it contains a '/' (a full path)."""
    return address if "/" in address else prefix + address


class SocketClient:
    """Serve a PES (a callable ``pes(cell, pos) -> (pot, force, vir, extras)``) to i-PI.

    Parameters
    ----------
    pes : callable
        An i-PI PES object such as :class:`ipi_dipole.driver.pes.DipolePES`; called with
        the cell (3, 3, bohr, vectors as columns) and positions (N, 3, bohr), or with lists
        of them for batched requests.
    unix : str, optional
        Path of i-PI's unix-domain socket (see :func:`unix_socket_path`).
    inet : (str, int), optional
        Host and port of i-PI's TCP socket.
    connect_timeout : float
        Seconds to wait for i-PI to open its socket at start.
    reconnect_wait : float
        Seconds to wait for a restarted i-PI after the connection is lost (0: exit at once).
    log : callable
        Where progress messages go (default: stderr).

    A PES with a ``new_session(requests_served)`` method hears of every (re)connection
    before it is served (the driver's PES refuses to follow i-PI into a restart when it
    counts steps).
    """

    def __init__(self, pes, unix: str | None = None, inet: tuple[str, int] | None = None,
                 connect_timeout: float = 60.0, reconnect_wait: float = 3.0, log=None):
        if (unix is None) == (inet is None):
            raise ValueError("give exactly one of unix= or inet=")
        self.pes = pes
        self.unix = unix
        self.inet = inet
        self.connect_timeout = float(connect_timeout)
        self.reconnect_wait = float(reconnect_wait)
        self.log = log or (lambda text: print(f"ipi-dipole drive: {text}", file=sys.stderr, flush=True))
        self.address = unix if unix is not None else f"{inet[0]}:{inet[1]}"
        self.requests = 0

    # -- connection -----------------------------------------------------------------
    def _connect_once(self) -> socket.socket:
        if self.unix is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = self.unix
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = self.inet
        try:
            sock.connect(target)
        except OSError:
            sock.close()
            raise
        return sock

    def connect(self, wait: float) -> socket.socket | None:
        """Connect, retrying for up to ``wait`` seconds; None when nobody answers."""
        deadline = time.monotonic() + wait
        delay = 0.05
        while True:
            try:
                return self._connect_once()
            except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, socket.timeout):
                # not (or no longer) listening: wait for it
                if time.monotonic() >= deadline:
                    return None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.5)
            except OSError as exc:  # a path too long, an unknown host, ...: waiting will not help
                raise InputError(f"cannot connect to i-PI at {self.address}: {exc}") from exc

    def serve(self) -> int:
        """Answer i-PI until it sends EXIT (returns 0) or is gone for good (returns 1)."""
        sock = self.connect(self.connect_timeout)
        if sock is None:
            self.log(f"no i-PI server at {self.address} after {self.connect_timeout:g} s: giving up")
            return 1
        sessions = 0
        deadline = None
        while True:
            self._greeted = False
            if hasattr(self.pes, "new_session"):
                self.pes.new_session(self.requests)
            try:
                with sock:
                    self._session(sock, "connected to" if sessions == 0 else "reconnected to")
                self.log(f"i-PI sent EXIT after {self.requests} force requests: done")
                return 0
            except ServerGone as exc:
                if self._greeted or deadline is None:
                    # a dying i-PI can still accept a connection for a moment: only a
                    # server that talked to us restarts the waiting time
                    self.log(f"lost i-PI at {self.address} ({exc}) after {self.requests} force requests")
                    if self.reconnect_wait <= 0:
                        return 1
                    self.log(f"waiting up to {self.reconnect_wait:g} s for i-PI to come back")
                    deadline = time.monotonic() + self.reconnect_wait
            sessions += 1
            sock = self.connect(max(0.0, deadline - time.monotonic()))
            if sock is None:
                self.log(f"i-PI did not come back within {self.reconnect_wait:g} s: exiting")
                return 1

    # -- protocol -------------------------------------------------------------------
    @staticmethod
    def _recv_exact(sock: socket.socket, nbytes: int) -> bytes:
        buf = bytearray(nbytes)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            try:
                n = sock.recv_into(view[got:], nbytes - got)
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise ServerGone(str(exc)) from None
            if n == 0:
                raise ServerGone("connection closed by i-PI" if got == 0 else "connection closed mid-message")
            got += n
        return bytes(buf)

    def _recv_array(self, sock, dtype, count) -> np.ndarray:
        dtype = np.dtype(dtype)
        return np.frombuffer(self._recv_exact(sock, dtype.itemsize * count), dtype=dtype).copy()

    @staticmethod
    def _send(sock, data: bytes) -> None:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ServerGone(str(exc)) from None

    def _session(self, sock: socket.socket, greeting: str) -> None:
        initialised = False
        have_data = False
        batch = 1
        results = None
        natoms = 0
        while True:
            header = self._recv_exact(sock, HDRLEN)
            if not self._greeted:
                self._greeted = True
                self.log(f"{greeting} i-PI at {self.address}")
            if header == STATUS:
                self._send(sock, HAVEDATA if have_data else (READY if initialised else NEEDINIT))
            elif header == INIT:
                self._recv_array(sock, np.int32, 1)  # replica id: unused
                length = int(self._recv_array(sock, np.int32, 1)[0])
                text = self._recv_exact(sock, length).decode("utf-8", errors="replace")
                batch = _batch_size(text)
                initialised = True
            elif header == POSDATA:
                if batch > 1:
                    natoms = int(self._recv_array(sock, np.int32, 1)[0])
                    cells = self._recv_array(sock, np.float64, 18 * batch).reshape(batch, 18)
                    pos = self._recv_array(sock, np.float64, 3 * natoms * batch).reshape(batch, natoms, 3)
                    results = self.pes([c[:9].reshape(3, 3) for c in cells], list(pos))
                else:
                    cell = self._recv_array(sock, np.float64, 9).reshape(3, 3)
                    self._recv_array(sock, np.float64, 9)  # inverse cell: unused
                    natoms = int(self._recv_array(sock, np.int32, 1)[0])
                    pos = self._recv_array(sock, np.float64, 3 * natoms).reshape(natoms, 3)
                    results = [self.pes(cell, pos)]
                have_data = True
            elif header == GETFORCE:
                if not have_data:
                    raise ProtocolError("i-PI asked for forces before sending positions")
                self._send(sock, _force_reply(results, natoms, batched=batch > 1))
                self.requests += len(results)
                have_data = False
            elif header == EXIT:
                return
            else:
                raise ProtocolError(f"unknown message {header!r} from i-PI")


def _batch_size(init_text: str) -> int:
    for token in init_text.split(","):
        key, sep, value = token.partition(":")
        if sep and key.strip() == "batch_size":
            try:
                return max(1, int(value.strip()))
            except ValueError:
                pass
    return 1


def _force_reply(results, natoms: int, batched: bool) -> bytes:
    """FORCEREADY message for one (plain) or several (batched) results."""
    def extra_bytes(extra):
        raw = (extra or "").encode("utf-8")
        return np.int32(len(raw)).tobytes() + raw

    parts = [FORCEREADY]
    if batched:
        parts.append(np.array([r[0] for r in results], np.float64).tobytes())
        parts.append(np.int32(natoms).tobytes())
        parts.append(np.array([np.asarray(r[1], np.float64).reshape(-1) for r in results]).tobytes())
        parts.append(np.array([np.asarray(r[2], np.float64).reshape(9) for r in results]).tobytes())
        parts.extend(extra_bytes(r[3]) for r in results)
    else:
        pot, force, vir, extra = results[0]
        force = np.asarray(force, np.float64).reshape(-1)
        if force.size != 3 * natoms:
            raise ValueError(f"the PES returned {force.size // 3} forces for {natoms} atoms")
        parts += [np.float64(pot).tobytes(), np.int32(natoms).tobytes(), force.tobytes(),
                  np.asarray(vir, np.float64).reshape(9).tobytes(), extra_bytes(extra)]
    return b"".join(parts)
