"""``replicas run``: the replicas of a run directory spread over MPI ranks.

Rank 0 keeps a work queue: every rank, rank 0 included, runs one replica at a time
(i-PI in a child process, see :mod:`ipi_dipole.replicas.worker`) and asks rank 0 for
the next one when it is free, so ranks that resume short replicas pick up more of
them. Rank 0 polls its own child and the other ranks' messages without blocking
(``Iprobe`` every 0.2 s), so no MPI thread support is needed, and prints progress:
a tqdm bar on a terminal, a status line every ``--status-interval`` seconds in a
batch log. Without ``mpirun`` the same code runs as one rank.

SIGTERM, SIGINT and SIGUSR1 (Slurm's ``--signal=B:USR1@300`` warning before the time
limit) on any rank stop every rank: no new replica is started, the running ones are
asked to checkpoint and exit, and the command exits with the number of replicas that
are not finished. Running the same command again resumes them.

One i-PI per replica, versus one i-PI for all of them
-----------------------------------------------------
The alternative is a single i-PI with ``<system_template>`` generating the N systems
and one ``<ffmpi>`` (or ``<ffsocket>``) force field served by K driver ranks
(``mpirun -n 1 i-pi input.xml : -n K i-pi-py_driver --mpi ...``). That i-PI process
does every system's integration step in Python, one after the other, so its cost per
MD step grows as ``N * t_ipi`` while the K drivers share ``N * t_force``. It is faster
when the force evaluation dominates (``t_force >> K * t_ipi``: DFT, large ML models),
and especially when the model evaluates many structures in one batch (``batch_size``,
GPU), and it makes fewer, larger files. One i-PI per replica (this command) scales the
i-PI work with the ranks too, isolates faults (a crashed replica stops only itself),
and checkpoints and resumes each replica on its own; it is the faster choice for cheap
force fields (q-TIP4P/F, small ML potentials), where i-PI's own step is a large part of
the cost. ``benchmarks/replicas_throughput.py`` measures ``t_ipi`` and ``t_force``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path

from ipi_dipole.errors import InputError
from ipi_dipole.ipi_io import read_manifest

from .worker import Outcome, ReplicaJob

TAG_TO_ROOT = 11   # worker -> rank 0: ("ready", outcome|None) / ("event", text) / ("stopping",)
TAG_COMMAND = 12   # rank 0 -> worker: ("run", index) / ("stop",)
TAG_STOP = 13      # rank 0 -> worker, any time: stop what you are doing
POLL = 0.2
STATUS_FILE = "status.json"
#: exit statuses above this mean "killed by a signal" to shells and schedulers
MAX_EXIT = 125


class _StopFlag:
    """Set by SIGTERM/SIGINT/SIGUSR1; the loops check it between polls."""

    def __init__(self):
        self.signal = None

    def install(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        self.signal = self.signal or signum

    def __bool__(self):
        return self.signal is not None


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI


class _Serial:
    """COMM_WORLD of one rank when mpi4py is missing."""

    rank, size = 0, 1

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def bcast(self, x, root=0):
        return x

    def Iprobe(self, **kw):
        return False


def run_replicas(run_dir: Path, *, threads=None, stop_grace=30.0, status_interval=None,
                 progress="auto", only=None) -> int:
    """Run (or resume) every unfinished replica of ``run_dir``; returns the number not finished."""
    run_dir = Path(run_dir).resolve()
    MPI = _mpi()
    comm = MPI.COMM_WORLD if MPI is not None else _Serial()
    rank, size = comm.Get_rank(), comm.Get_size()
    manifest = None
    error = None
    if rank == 0:
        try:
            manifest = read_manifest(run_dir)
        except InputError as exc:
            error = str(exc)
    if manifest is not None and only:
        unknown = sorted(set(only) - set(manifest.names()))
        if unknown:
            error = f"{run_dir}: no replica named {', '.join(unknown)} in the manifest"
    manifest, error = comm.bcast((manifest, error), root=0)
    if error:
        if rank == 0:
            raise InputError(error)
        return 2
    stop = _StopFlag()
    stop.install()
    ctx = dict(run_dir=run_dir, total_steps=int(manifest.steps),
               driver_command=manifest.driver_command, threads=threads, stop_grace=stop_grace)
    jobs = []  # the replica this rank runs, for the emergency stop below
    try:
        if rank == 0:
            code = _root(comm, MPI, manifest, ctx, stop, status_interval, progress, only, jobs)
        else:
            code = _worker(comm, MPI, manifest, ctx, stop, jobs)
    except Exception:
        # a bug here must not leave the other ranks waiting forever: checkpoint what this
        # rank runs, then take the whole MPI job down
        import traceback

        traceback.print_exc()
        for job in jobs:
            _stop_now(job, stop_grace)
        if size > 1:
            print(f"ipi-dipole replicas run: rank {rank} failed; aborting the MPI job", file=sys.stderr, flush=True)
            comm.Abort(70)
        raise
    return comm.bcast(code, root=0)


def _stop_now(job: ReplicaJob, grace: float):
    if job.proc is None or job.proc.poll() is not None:
        return
    job.request_stop()
    deadline = time.time() + grace
    while job.proc.poll() is None and time.time() < deadline:
        time.sleep(POLL)
    job.kill()


def _job(manifest, ctx, index) -> ReplicaJob:
    return ReplicaJob(entry=manifest.replicas[index], **ctx)


def _run_to_end(job: ReplicaJob, stop, stop_from_root, on_start=None) -> Outcome:
    """Start one replica and poll it to its end; stop it when asked."""
    outcome = job.start()
    if on_start is not None:
        on_start(job)
    while outcome is None:
        if stop or stop_from_root():
            job.request_stop()
        time.sleep(POLL)
        outcome = job.poll()
    return outcome


# ------------------------------------------------------------------------ workers

def _worker(comm, MPI, manifest, ctx, stop, jobs) -> int:
    told_root = False

    def stop_from_root():
        nonlocal told_root
        if stop and not told_root:
            comm.send(("stopping",), dest=0, tag=TAG_TO_ROOT)
            told_root = True
        if comm.Iprobe(source=0, tag=TAG_STOP):
            comm.recv(source=0, tag=TAG_STOP)
            stop.signal = stop.signal or "root"
        return bool(stop)

    outcome = None
    while True:
        comm.send(("ready", outcome), dest=0, tag=TAG_TO_ROOT)
        while not comm.Iprobe(source=0, tag=TAG_COMMAND):
            stop_from_root()
            time.sleep(0.05)
        command = comm.recv(source=0, tag=TAG_COMMAND)
        if command[0] == "stop":
            break
        index = command[1]
        job = _job(manifest, ctx, index)
        jobs[:] = [job]

        def report(job):
            notes = "; ".join(job.notes)
            comm.send(("event", f"{job.name}: started on rank {comm.Get_rank()}" + (f": {notes}" if notes else "")),
                      dest=0, tag=TAG_TO_ROOT)

        try:
            outcome = _run_to_end(job, stop, stop_from_root, report)
        except Exception as exc:  # report, never hang the job
            job.kill()
            outcome = Outcome(job.name, "failed", None, f"rank {comm.Get_rank()}: {type(exc).__name__}: {exc}")
    if comm.Iprobe(source=0, tag=TAG_STOP):
        comm.recv(source=0, tag=TAG_STOP)
    return 0


# ------------------------------------------------------------------------- rank 0

class _Progress:
    """Progress of the running replicas, from their properties files."""

    def __init__(self, manifest, ctx, mode, interval, total_replicas):
        self.steps = int(manifest.steps)
        self.mode = mode
        if mode == "auto":
            self.mode = "bar" if sys.stderr.isatty() else "lines"
        self.interval = interval if interval is not None else (10.0 if self.mode == "bar" else 60.0)
        self.last = 0.0
        self.bar = None
        self.total = total_replicas * self.steps
        if self.mode == "bar":
            import tqdm

            tqdm.tqdm.monitor_interval = 0  # no monitor thread: children are forked with preexec_fn
            self.bar = tqdm.tqdm(total=self.total, unit="step", dynamic_ncols=True, desc="replica-steps")

    def say(self, text):
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def update(self, running: dict, finished_steps: int, force=False):
        now = time.time()
        if not force and now - self.last < (1.0 if self.bar is not None else self.interval):
            return
        self.last = now
        parts, done = [], finished_steps
        for name, job in sorted(running.items()):
            s = job.steps_done()
            if s is not None:
                done += s
            parts.append(f"{name.replace('replica_', '')}:{'-' if s is None else s}")
        if self.bar is not None:
            self.bar.n = min(done, self.total)
            self.bar.set_postfix_str(" ".join(parts)[:120], refresh=True)
        elif self.mode == "lines":
            stamp = time.strftime("%H:%M:%S")
            print(f"[{stamp}] {done}/{self.total} replica-steps; running (replica:step/{self.steps}) "
                  + (" ".join(parts) or "none"), flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _root(comm, MPI, manifest, ctx, stop, status_interval, progress, only, jobs) -> int:
    size = comm.Get_size()
    replicas = manifest.replicas
    indices = range(len(replicas)) if only is None else [i for i, r in enumerate(replicas) if r.name in only]
    outcomes: dict[str, Outcome] = {}
    todo = deque()
    for i in indices:
        job = _job(manifest, ctx, i)
        if job.is_done():
            outcomes[job.name] = Outcome(job.name, "done", ctx["total_steps"], "already finished")
        else:
            todo.append(i)
    prog = _Progress(manifest, ctx, progress, status_interval, len(indices))
    prog.say(f"{len(indices)} replicas in {ctx['run_dir']}: {len(indices) - len(todo)} already finished, "
             f"{len(todo)} to run on {size} rank(s)")
    workers = set(range(1, size))
    where: dict[str, int] = {}        # replica name -> rank
    own: ReplicaJob | None = None
    stop_sent = False
    t0 = time.time()

    def record(o: Outcome):
        outcomes[o.name] = o
        where.pop(o.name, None)
        if o.status == "done":
            prog.say(f"{o.name}: {o.message} ({o.seconds:.1f} s)" if o.seconds else f"{o.name}: {o.message}")
        elif o.status == "interrupted":
            prog.say(f"{o.name}: {o.message}")
        else:
            prog.say(f"{o.name}: {o.status.upper()}: {o.message}")

    while True:
        # messages from the workers
        status = MPI.Status() if MPI is not None else None
        while size > 1 and comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_TO_ROOT, status=status):
            src = status.Get_source()
            msg = comm.recv(source=src, tag=TAG_TO_ROOT)
            if msg[0] == "event":
                prog.say(msg[1])
            elif msg[0] == "stopping":
                stop.signal = stop.signal or "rank"
            elif msg[0] == "ready":
                if msg[1] is not None:
                    record(msg[1])
                if todo and not stop:
                    i = todo.popleft()
                    where[replicas[i].name] = src
                    comm.send(("run", i), dest=src, tag=TAG_COMMAND)
                else:
                    comm.send(("stop",), dest=src, tag=TAG_COMMAND)
                    workers.discard(src)
        if stop and not stop_sent:
            prog.say(f"stop requested (signal {stop.signal}): checkpointing the running replicas")
            for w in workers:
                comm.send(("stop",), dest=w, tag=TAG_STOP)
            stop_sent = True
        # rank 0's own replica
        if own is None and todo and not stop:
            own = _job(manifest, ctx, todo.popleft())
            jobs[:] = [own]
            where[own.name] = 0
            try:
                o = own.start()
            except Exception as exc:
                own.kill()
                o = Outcome(own.name, "failed", None, f"rank 0: {type(exc).__name__}: {exc}")
            notes = "; ".join(own.notes)
            prog.say(f"{own.name}: started on rank 0" + (f": {notes}" if notes else ""))
            if o is not None:
                record(o)
                own = None
        if own is not None:
            if stop:
                own.request_stop()
            o = own.poll()
            if o is not None:
                record(o)
                own = None
        running = {name: (own if own is not None and name == own.name else _PeekSteps(ctx, manifest, name))
                   for name in where}
        finished = sum(o.steps or 0 for o in outcomes.values() if o.status == "done")
        prog.update(running, finished)
        if own is None and (not todo or stop) and not workers:
            break
        time.sleep(POLL)

    prog.update({}, sum(o.steps or 0 for o in outcomes.values() if o.status == "done"), force=True)
    prog.close()
    return _summary(manifest, ctx, outcomes, indices, time.time() - t0, stop)


class _PeekSteps:
    """Steps done by a replica running on another rank (read from its files)."""

    def __init__(self, ctx, manifest, name):
        self.job = ReplicaJob(entry=manifest.replica(name), **ctx)

    def steps_done(self):
        return self.job.steps_done()


def _summary(manifest, ctx, outcomes, indices, seconds, stop) -> int:
    names = [manifest.replicas[i].name for i in indices]
    counts = {}
    for n in names:
        o = outcomes.get(n) or Outcome(n, "not started")
        counts[o.status] = counts.get(o.status, 0) + 1
    unfinished = [n for n in names if (outcomes.get(n) is None or outcomes[n].status != "done")]
    print(f"replicas: {counts.get('done', 0)} done, {counts.get('failed', 0)} failed, "
          f"{counts.get('interrupted', 0)} interrupted, {counts.get('skipped', 0)} skipped (locked), "
          f"{counts.get('not started', 0)} not started; {seconds:.1f} s", flush=True)
    failed = [n for n in names if outcomes.get(n) is not None and outcomes[n].status == "failed"]
    if failed:
        print("failed: " + ", ".join(failed) + " (logs: <replica>/ipi.log)", flush=True)
    if unfinished and stop:
        print("rerun the same command to resume the unfinished replicas", flush=True)
    status = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": round(seconds, 1),
              "replicas": {n: {"status": (outcomes.get(n) or Outcome(n, "not started")).status,
                               "steps": (outcomes.get(n) or Outcome(n, "")).steps,
                               "message": (outcomes.get(n) or Outcome(n, "")).message[:2000]}
                           for n in names}}
    tmp = Path(ctx["run_dir"]) / (STATUS_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(status, indent=1) + "\n")
        os.replace(tmp, Path(ctx["run_dir"]) / STATUS_FILE)
    except OSError:
        pass
    return min(len(unfinished), MAX_EXIT)
