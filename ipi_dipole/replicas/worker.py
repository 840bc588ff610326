"""One replica as a child process: start or resume i-PI (and its driver), watch it, stop it.

The lifecycle of a replica directory:

1. ``DONE`` present: nothing to do.
2. ``.lock`` held by a live process (an i-PI child of an earlier job that is still
   running, e.g. after the job's launcher was killed hard): skipped and reported.
3. A readable checkpoint at step S > 0 (``RESTART`` from i-PI's soft exit, the periodic
   ``<checkpoint>``, or their ``#...#`` backups, newest step first): every output is cut
   back to step S (:func:`ipi_dipole.replicas.outputs.trim_outputs`) and ``i-pi
   <checkpoint>`` appends from step S+1. A checkpoint whose outputs have a gap is passed
   over for an older one.
4. Otherwise a fresh start from ``input.xml``, after removing partial outputs of an
   attempt that died before its first checkpoint (i-PI would otherwise keep them as
   ``#name#0#`` backups, which a directory scan would count twice).

When i-PI exits, the replica is done if a checkpoint says ``step == total_steps`` and
every output ends exactly at the last step; then ``DONE`` is written.

Stopping: the ``EXIT`` file in the replica directory (i-PI's own soft-exit request,
polled every second) rather than a signal, so that a child that also receives the
scheduler's SIGTERM directly (Slurm signals every process of the job) sees one request,
not two (i-PI takes a second signal as "die now"). SIGTERM and then SIGKILL follow
after grace periods.

The child's environment drops the launcher's ``PMI_*``/``PMIX_*``/``HYDRA_*``/``OMPI_*``
variables: a child that imports mpi4py (the LAMMPS back-end does) would otherwise try
to join the parent's MPI job and fail in ``MPI_Init``.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ipi_dipole.errors import InputError
from ipi_dipole.ipi_io import ReplicaEntry

from . import outputs as ro

DONE = "DONE"
LOCK = ".lock"
EXIT = "EXIT"
IPI_LOG = "ipi.log"
DRIVER_LOG = "driver.log"
#: seconds i-PI may outlive its driver before the replica is stopped as failed
DRIVER_GONE_GRACE = 10.0
_MPI_ENV_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "HYDI_", "OMPI_", "MPI_LOCALNRANKS", "MPI_LOCALRANKID",
                     "MPICH_INTERFACE_HOSTNAME", "I_MPI_HYDRA", "SLURM_MPI_TYPE")


def child_environment(threads: int | None = None) -> dict:
    """The environment for an i-PI/driver child: no MPI launcher variables, one OpenMP thread by default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_MPI_ENV_PREFIXES)}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    else:
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def ipi_command() -> list[str]:
    """How to start i-PI with the same Python: the ``i-pi`` script beside the interpreter."""
    script = Path(sys.executable).with_name("i-pi")
    if not script.exists():
        found = shutil.which("i-pi")
        if not found:
            raise InputError("cannot find the 'i-pi' command (is ipi installed in this Python?)")
        script = Path(found)
    return [sys.executable, str(script)]


def _child_setup():
    """In the child, before exec: get SIGTERM (i-PI's soft exit) when the launching rank dies
    (e.g. SIGKILL), and ignore SIGUSR1, the "stop soon" signal meant for the ranks, which
    Slurm's ``--signal=USR1@T`` also delivers to the children (its default action kills)."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # an ignored signal stays ignored across exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Outcome:
    """The result of one attempt: ``status`` is done, failed, interrupted or skipped."""

    name: str
    status: str
    steps: int | None = None
    message: str = ""
    seconds: float = 0.0


@dataclass
class ReplicaJob:
    """A replica directory and, while it runs, its i-PI child (and driver child for sockets)."""

    run_dir: Path
    entry: ReplicaEntry
    total_steps: int
    driver_command: str | None = None
    threads: int | None = None
    stop_grace: float = 30.0
    proc: subprocess.Popen | None = None
    driver: subprocess.Popen | None = None
    started_at: float = 0.0
    start_step: int = 0
    ipi_target: str | None = None
    stop_requested_at: float | None = None
    signalled: int = 0
    driver_failed: str | None = None
    _driver_gone_at: float | None = None
    _lock_fd: int | None = None
    _log: object = None
    _driver_log: object = None
    notes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def dir(self) -> Path:
        return self.run_dir / self.entry.directory

    @property
    def input(self) -> Path:
        return self.dir / self.entry.input

    def is_done(self) -> bool:
        return (self.dir / DONE).exists()

    # ------------------------------------------------------------------ start
    def start(self) -> Outcome | None:
        """Start (or resume) the replica. Returns an Outcome when there is nothing to run."""
        if self.is_done():
            return Outcome(self.name, "done", self.total_steps, "already finished")
        if not self.input.exists():
            return Outcome(self.name, "failed", None, f"{self.input}: missing")
        if not self._lock():
            holder = (self.dir / LOCK).read_text().strip() if (self.dir / LOCK).exists() else "?"
            return Outcome(self.name, "skipped", None,
                           f"locked by another process ({holder}): an i-PI of an earlier job may still be running")
        try:
            (self.dir / EXIT).unlink(missing_ok=True)
            target, step = self._resume_point()
        except InputError as exc:
            self._unlock()
            return Outcome(self.name, "failed", None, str(exc))
        except Exception as exc:  # a replica must never take the rank down with it
            self._unlock()
            return Outcome(self.name, "failed", None, f"preparing the restart: {type(exc).__name__}: {exc}")
        if target is None:  # a checkpoint at the last step, outputs complete
            self._mark_done(step)
            self._unlock()
            return Outcome(self.name, "done", step, "finished (found complete on restart)")
        self.start_step = step
        self.ipi_target = target
        if self.driver_command:
            self._remove_stale_socket()
        self._log = open(self.dir / IPI_LOG, "a")
        stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        how = "fresh start from input.xml" if step == 0 else f"resuming from {target} at step {step}"
        self._log.write(f"\n===== ipi-dipole replicas run: {how} on {socket.gethostname()} "
                        f"pid {os.getpid()} at {stamp} =====\n")
        self._log.flush()
        self.started_at = time.time()
        try:
            self.proc = subprocess.Popen(
                ipi_command() + [target], cwd=self.dir, env=child_environment(self.threads),
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=(self._lock_fd,), preexec_fn=_child_setup)
        except OSError as exc:
            self._close()
            return Outcome(self.name, "failed", None, f"cannot start i-PI: {exc}")
        self.notes.append(how)
        if self.driver_command:
            fail = self._start_driver()
            if fail:
                self.driver_failed = fail
                self.request_stop()
        return None

    def _resume_point(self) -> tuple[str | None, int]:
        """(file to give i-PI, step it starts from); (None, total) when already complete."""
        refused = []
        for chk in ro.checkpoints(self.input, self.dir):
            if chk.step <= 0:
                continue
            refused.append(chk.path.name)
            if chk.step >= self.total_steps:
                if not ro.check_complete(self.input, self.dir, self.total_steps):
                    return None, chk.step
                continue  # outputs do not match: fall back to an older checkpoint
            try:
                ro.trim_outputs(self.input, self.dir, chk.step, dry_run=True)
            except InputError as exc:
                self.notes.append(f"not resuming from {chk.path.name}: {exc}")
                continue
            for note in ro.trim_outputs(self.input, self.dir, chk.step):
                self.notes.append(note)
            return chk.path.name, chk.step
        if refused:
            # outputs exist that no checkpoint can continue without a gap (written with
            # flush > 1 and lost in a hard kill?): starting over would delete them, so ask
            raise InputError(f"{self.dir}: no checkpoint ({', '.join(refused)}) continues the outputs "
                             f"without a gap ({'; '.join(self.notes[-2:])}); to start this replica "
                             f"over, delete its outputs and checkpoints")
        self._clean_for_fresh_start()
        return self.input.name, 0

    def _clean_for_fresh_start(self):
        """Remove outputs (and i-PI's backups of them) of an attempt that never reached a checkpoint."""
        outputs, chk = ro.read_outputs(self.input)
        bases = [o.base for o in outputs] + ([chk["base"]] if chk else []) + [ro.SOFT_EXIT_CHECKPOINT]
        removed = []
        for path in self.dir.iterdir():
            name = path.name
            plain = name[1:].split("#")[0] if name.startswith("#") else name
            if path.is_file() and any(plain == b or plain.startswith(b + "_") or plain.startswith(b + ".")
                                      for b in bases):
                path.unlink()
                removed.append(name)
        if removed:
            self.notes.append(f"removed {len(removed)} files of an attempt that never reached a "
                              f"checkpoint ({', '.join(sorted(removed)[:4])}{', ...' if len(removed) > 4 else ''})")

    # ------------------------------------------------------------ the driver
    def _socket_target(self) -> dict:
        sock = self.entry.socket or {}
        address = sock.get("address") or ""
        import xml.etree.ElementTree as ET

        prefix = ET.parse(self.input).getroot().get("sockets_prefix", "/tmp/ipi_").strip()
        return {"address": address, "port": sock.get("port") or "", "host": "localhost",
                "socket_path": f"{prefix}{address}", "replica_dir": str(self.dir),
                # the file i-PI was started on (input or checkpoint): the driver's --ipi-input
                "ipi_input": str(self.dir / (self.ipi_target or self.input.name))}

    def _remove_stale_socket(self):
        """A unix socket file left by a killed i-PI of this replica: i-PI refuses to start over it.
        The address is this replica's own and its lock is held, so nothing else is using it."""
        import stat

        path = Path(self._socket_target()["socket_path"])
        try:
            if (self.entry.socket or {}).get("address") and stat.S_ISSOCK(path.stat().st_mode):
                path.unlink()
                self.notes.append(f"removed the stale socket {path}")
        except OSError:
            pass

    def _socket_ready(self, t) -> bool:
        if t["address"] and Path(t["socket_path"]).exists():
            return True
        if t["port"]:
            try:
                with socket.create_connection(("localhost", int(t["port"])), timeout=0.2):
                    return True  # i-PI accepts and drops a connection that never says hello
            except OSError:
                return False
        return False

    def _start_driver(self) -> str | None:
        t = self._socket_target()
        deadline = time.time() + 120
        while not self._socket_ready(t):
            if self.proc.poll() is not None:
                return "i-PI exited before opening its socket"
            if time.time() > deadline:
                return "i-PI did not open its socket within 120 s"
            time.sleep(0.1)
        try:
            cmd = shlex.split(self.driver_command.format(**t))
        except (KeyError, IndexError, ValueError) as exc:
            return f"bad --driver command {self.driver_command!r}: {exc}"
        if cmd and os.sep not in cmd[0] and shutil.which(cmd[0]) is None:
            beside = Path(sys.executable).with_name(cmd[0])  # this environment's scripts
            if beside.exists():
                cmd[0] = str(beside)
        self._driver_log = open(self.dir / DRIVER_LOG, "a")
        self._driver_log.write(f"\n===== {' '.join(cmd)} =====\n")
        self._driver_log.flush()
        try:
            self.driver = subprocess.Popen(
                cmd, cwd=self.dir, env=child_environment(self.threads), stdin=subprocess.DEVNULL,
                stdout=self._driver_log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_child_setup)
        except OSError as exc:
            return f"cannot start the driver {cmd[0]!r}: {exc}"
        return None

    # ------------------------------------------------------------------ watch
    def steps_done(self) -> int | None:
        """Last step in the properties file (None before the first record)."""
        for out, path in ro.output_files(self.input, self.dir):
            if out.kind == "properties":
                try:
                    return ro.last_step(path, "properties")
                except (InputError, OSError):
                    return None
        return None

    def poll(self) -> Outcome | None:
        """None while running; the Outcome once i-PI (and the driver) are gone."""
        now = time.time()
        if self.driver is not None and self.proc.poll() is None and self.driver.poll() is not None \
                and self.stop_requested_at is None:
            # i-PI sends its drivers EXIT a moment before it ends itself: give it time
            self._driver_gone_at = self._driver_gone_at or now
            if now - self._driver_gone_at > DRIVER_GONE_GRACE:
                self.driver_failed = (f"the driver exited (status {self.driver.returncode}) and i-PI "
                                      f"was still running {DRIVER_GONE_GRACE:.0f} s later")
                self.request_stop()
        if self.stop_requested_at is not None and self.proc.poll() is None:
            waited = now - self.stop_requested_at
            if waited > self.stop_grace and self.signalled == 0:
                self._signal(signal.SIGTERM)
            elif waited > 2 * self.stop_grace + 10 and self.signalled == 1:
                self._signal(signal.SIGKILL)
        if self.proc.poll() is None:
            return None
        rc = self.proc.returncode
        self._stop_driver()
        outcome = self._judge(rc)
        outcome.seconds = time.time() - self.started_at
        self._close()
        return outcome

    def _judge(self, rc) -> Outcome:
        chks = ro.checkpoints(self.input, self.dir)
        step = chks[0].step if chks else 0
        extra = ""
        if self.driver is not None:
            extra = f"\n--- {DRIVER_LOG} (tail) ---\n{tail(self.dir / DRIVER_LOG)}"
        if rc == 0 and step >= self.total_steps and not self.driver_failed:
            problems = ro.check_complete(self.input, self.dir, self.total_steps)
            if not problems:
                self._mark_done(step)
                return Outcome(self.name, "done", step, f"finished {self.total_steps} steps")
            return Outcome(self.name, "failed", step, "i-PI finished but its outputs are incomplete: "
                           + "; ".join(problems))
        if self.stop_requested_at is not None and not self.driver_failed:
            return Outcome(self.name, "interrupted", step, f"stopped at step {step} (checkpointed; rerun to resume)")
        why = self.driver_failed or (f"i-PI exited with status {rc}" if rc else
                                     f"i-PI stopped at step {step} of {self.total_steps}")
        return Outcome(self.name, "failed", step,
                       f"{why}\n--- {IPI_LOG} (tail) ---\n{tail(self.dir / IPI_LOG)}{extra}")

    # ------------------------------------------------------------------- stop
    def request_stop(self):
        """Ask i-PI for a soft exit (checkpoint and quit) through its EXIT file."""
        if self.proc is None or self.proc.poll() is not None or self.stop_requested_at is not None:
            return
        self.stop_requested_at = time.time()
        try:
            (self.dir / EXIT).touch()
        except OSError:
            self._signal(signal.SIGTERM)

    def _signal(self, sig):
        self.signalled += 1
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop_driver(self):
        if self.driver is None:
            return
        try:
            self.driver.wait(timeout=10)  # it should notice that i-PI went away
        except subprocess.TimeoutExpired:
            self.driver.terminate()
            try:
                self.driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait()

    def kill(self):
        """Last resort when the rank itself is going down."""
        for p in (self.proc, self.driver):
            if p is not None and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    # ------------------------------------------------------------ bookkeeping
    def _mark_done(self, step):
        marker = {"steps": step, "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        tmp = self.dir / (DONE + ".tmp")
        tmp.write_text(json.dumps(marker) + "\n")
        os.replace(tmp, self.dir / DONE)
        (self.dir / EXIT).unlink(missing_ok=True)

    def _lock(self) -> bool:
        import fcntl

        fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            pass  # file systems without flock: run unlocked
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._lock_fd = fd
        return True

    def _unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _close(self):
        for f in (self._log, self._driver_log):
            if f is not None:
                f.close()
        self._log = self._driver_log = None
        (self.dir / EXIT).unlink(missing_ok=True)
        self._unlock()
