"""``replicas prepare``: N NVE i-PI inputs from one equilibration run, and their manifest.

Each replica directory ``RUN_DIR/replica_000/`` gets

- ``input.xml``: the template with its ``<initialize>`` pointing at the files below, its own
  ``<prng><seed>``, output prefix (``replica_000``), socket address (``<ffsocket>``) or
  absolute paths (``<ffdirect>``), ``<total_steps>``, a ``step`` column in the properties
  and a ``<checkpoint>`` written after every other output (so that a checkpoint never
  claims a step whose outputs are not on disk);
- ``start.xyz``: the frame's positions and cell (i-PI xyz with a full-precision
  ``CELL(H)`` comment, Angstrom), rotated into i-PI's upper-triangular cell convention;
  its velocities (same rotation, atomic units) go into ``input.xml`` itself as
  ``<velocities mode='manual'>``, not into a second xyz file: a one-frame velocity
  trajectory would look like a replica of its own to a directory scan by content.

``RUN_DIR/manifest.json`` records what was made: source frames and times, seeds, steps,
template hash, how the separation and temperature were chosen
(:class:`ipi_dipole.ipi_io.Manifest`).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipi_dipole import ipi_io
from ipi_dipole.errors import InputError
from ipi_dipole.ipi_io import MANIFEST, Manifest, ReplicaEntry

from . import outputs as ro
from . import select as sel
from . import source as src
INPUT = "input.xml"
START_POSITIONS = "start.xyz"
#: default separation between starting frames, in integrated autocorrelation times
SEPARATION_IN_TAU = 3.0
DEFAULT_CHECKPOINT_STRIDE = 1000
#: vacuum box (Angstrom) added around frames that come without a cell
VACUUM_PADDING = 20.0


def replica_name(i: int) -> str:
    return f"replica_{i:03d}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- template

def read_template(path: Path) -> ET.ElementTree:
    """Parse an i-PI XML keeping its comments, and check that it is an NVE input."""
    try:
        tree = ET.parse(path, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"{path}: not a readable XML file ({exc})") from exc
    root = tree.getroot()
    if root.tag != "simulation":
        raise InputError(f"{path}: the root element is <{root.tag}>, expected <simulation>")
    if root.find("system_template") is not None or len(root.findall("system")) != 1:
        raise InputError(f"{path}: the template must hold exactly one <system> (no <system_template>)")
    dyn = root.find("system/motion/dynamics")
    if dyn is None:
        raise InputError(f"{path}: no <system><motion><dynamics> block")
    if dyn.get("mode", "nve").strip().lower() != "nve":
        raise InputError(f"{path}: <dynamics mode='{dyn.get('mode')}'>: replicas must run NVE "
                         f"(a thermostat or barostat would distort the spectrum)")
    for el in root.iter("trajectory"):
        what = (el.text or "").strip()
        fmt = el.get("format", "xyz")
        if not what.startswith("extras") and fmt not in ro.TRIMMABLE_FORMATS:
            raise InputError(f"{path}: <trajectory format='{fmt}'> cannot be resumed exactly "
                             f"after a kill; use one of {', '.join(ro.TRIMMABLE_FORMATS)}")
    return tree


def forcefield_mode(root: ET.Element) -> str:
    """``socket`` when the template talks to drivers through sockets, else ``direct``."""
    return "socket" if root.find("ffsocket") is not None else "direct"


def _set_child(parent: ET.Element, tag: str, text: str | None = None, **attrib) -> ET.Element:
    el = parent.find(tag)
    if el is None:
        el = ET.SubElement(parent, tag)
    for k, v in attrib.items():
        el.set(k, str(v))
    if text is not None:
        el.text = text
    return el


def _absolute_if_file(value: str, base: Path) -> str:
    """``value`` with file names relative to ``base`` made absolute; ``a:b:c`` specs part by part
    (``forces: lammps:in.lammps``, ``ase:tblite.ase:TBLite:calc.json``)."""
    v = value.strip().strip("'\"")
    parts = v.split(":")
    changed = False
    for i, part in enumerate(parts):
        if part and not os.path.isabs(part) and (base / part).is_file():
            parts[i] = str((base / part).resolve())
            changed = True
    return ":".join(parts) if changed else value


def _absolute_parameters(text: str, base: Path) -> str:
    """Rewrite relative file names in an ``<ffdirect><parameters>{...}`` dict as absolute paths."""
    from ipi.utils.io.inputs.io_xml import read_list

    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        return text
    items = []
    for item in read_list(body, delims="{}", split=",", strip=" \n\t"):
        if ":" in item:
            k, v = item.split(":", 1)
            items.append(f"{k.strip()}: {_absolute_if_file(v, base).strip()}")
        else:
            items.append(item)
    return "{" + ", ".join(items) + "}"


@dataclass
class ReplicaSettings:
    name: str
    seed: int
    steps: int
    checkpoint_stride: int
    address: str | None = None
    port: int | None = None


def edit_template(tree: ET.ElementTree, template_dir: Path, r: ReplicaSettings,
                  velocities_au: np.ndarray) -> ET.ElementTree:
    """A copy of the template set up for one replica (see the module docstring)."""
    import copy

    tree = copy.deepcopy(tree)
    root = tree.getroot()
    system = root.find("system")

    init = system.find("initialize")
    if init is None:
        init = ET.Element("initialize", {"nbeads": "1"})
        system.insert(0, init)
    for tag in ("file", "positions", "cell", "velocities", "momenta", "labels", "masses"):
        for el in init.findall(tag):
            init.remove(el)
    f = ET.Element("file", {"mode": "xyz"})
    f.text = f" {START_POSITIONS} "
    v = ET.Element("velocities", {"mode": "manual", "units": "atomic_unit"})
    v.text = " [ " + ", ".join(f"{x:.15e}" for x in np.asarray(velocities_au).ravel()) + " ] "
    init.insert(0, v)
    init.insert(0, f)

    _set_child(root, "prng")
    _set_child(root.find("prng"), "seed", f" {r.seed} ")
    for el in root.find("prng").findall("state"):
        root.find("prng").remove(el)
    _set_child(root, "total_steps", f" {r.steps} ")

    output = root.find("output")
    if output is None:
        output = ET.SubElement(root, "output")
    output.set("prefix", r.name)
    for props in output.findall("properties"):
        names = (props.text or "").strip().strip("[]").split(",")
        names = [n.strip() for n in names if n.strip()]
        if not any(n.split("{")[0].split("(")[0] == "step" for n in names):
            props.text = " [ " + ", ".join(["step"] + names) + " ] "
    chk = output.find("checkpoint")
    if chk is None:
        chk = ET.Element("checkpoint", {"filename": "checkpoint"})
    else:
        output.remove(chk)
    chk.set("stride", str(r.checkpoint_stride))
    chk.set("overwrite", "True")
    chk.text = None
    output.append(chk)  # written after the other outputs of the same step

    for ff in root.findall("ffsocket"):
        mode = ff.get("mode", "inet")
        if mode == "unix" and r.address:
            _set_child(ff, "address", f" {r.address} ")
        elif mode == "inet" and r.port is not None:
            _set_child(ff, "port", f" {r.port} ")
    for ff in root.findall("ffdirect"):
        pes_path = ff.find("pes_path")
        if pes_path is not None and pes_path.text:
            pes_path.text = f" {_absolute_if_file(pes_path.text, template_dir).strip()} "
        params = ff.find("parameters")
        if params is not None and params.text:
            params.text = f" {_absolute_parameters(params.text, template_dir)} "
    return tree


def _template_port(root) -> int | None:
    el = root.find("ffsocket/port")
    return int(el.text) if el is not None and (el.text or "").strip() else None


# ----------------------------------------------------------------------- frame files

def to_ipi_cell(positions, velocities, cell):
    """Rotate a frame so that its cell is upper triangular with vectors as columns (i-PI's h).

    Parameters
    ----------
    positions, velocities : ndarray (N, 3)
        Angstrom and Angstrom/fs (velocities may be None).
    cell : ndarray (3, 3)
        Lattice vectors as rows, Angstrom.

    Returns
    -------
    positions, velocities, h
        ``h`` (3, 3) in Angstrom, lattice vectors as columns.
    """
    from ipi.utils import mathtools as mt

    h = mt.abc2h(*mt.genh2abc(np.asarray(cell, float).T))
    rot = np.linalg.solve(np.asarray(cell, float), h.T)  # row vectors: x_new = x_old @ rot
    new_v = None if velocities is None else velocities @ rot
    return positions @ rot, new_v, h


# -------------------------------------------------------------------- main procedure

@dataclass
class PrepareOptions:
    trajectory: list
    n: int
    template: Path
    run_dir: Path
    min_separation_ps: float | None = None
    skip_ps: float | None = None
    velocities: str = "auto"
    velocity_trajectory: Path | None = None
    properties: Path | None = None
    temperature: float | None = None
    equil_timestep_fs: float | None = None
    frame_interval_fs: float | None = None
    seed: int | None = None
    steps: int | None = None
    checkpoint_stride: int | None = None
    driver: str | None = None
    force: bool = False
    log: list = field(default_factory=list)


def _say(opts, msg):
    opts.log.append(msg)
    print(msg, flush=True)


@dataclass
class Source:
    """The equilibration run as read: frames in time order, their times, where things came from."""

    paths: list
    frames: list
    times_ps: np.ndarray
    info: src.RunInfo
    properties: ipi_io.Properties | None
    properties_path: Path | None
    velocity_path: Path | None  # an i-PI velocity trajectory, when velocities come from one
    trajectory_velocities: bool  # velocities from the run (frames or velocity_path), not drawn
    velocities_by_step: dict | None = None  # Angstrom/fs, read from velocity_path


def prepare(opts: PrepareOptions) -> Manifest:
    """Make the replica directories and the manifest; returns the manifest."""
    template_path = Path(opts.template).resolve()
    tree = read_template(template_path)
    root = tree.getroot()
    run_dir = Path(opts.run_dir).resolve()
    if (run_dir / MANIFEST).exists() and not opts.force:
        raise InputError(f"{run_dir / MANIFEST}: a run already exists there (use --force to overwrite it)")
    if run_dir.exists() and any(p.name.startswith("replica_") for p in run_dir.iterdir()) and not opts.force:
        raise InputError(f"{run_dir}: holds replica directories already (use --force to overwrite them)")
    mode = forcefield_mode(root)
    template_info = ipi_io.read_ipi_input(template_path)
    slow = [el.get("filename", el.tag) for el in root.iter() if el.tag in ("properties", "trajectory")
            and int(el.get("flush", "1")) != 1]
    if slow:
        _say(opts, f"WARNING: {', '.join(slow)} flush less often than every record: a hard kill can lose "
                   f"records before the last checkpoint, and the replica then cannot resume without a gap")
    if mode == "socket" and not opts.driver:
        raise InputError(f"{template_path}: the template uses <ffsocket>; give --driver 'COMMAND' "
                         f"(with {{address}} or {{port}}) so that 'replicas run' can start one per replica")
    steps = opts.steps or template_info.total_steps
    if not steps or steps < 1:
        raise InputError(f"{template_path}: no <total_steps>; give --steps")
    template_checkpoint = ro.read_outputs(template_path)[1]
    stride = opts.checkpoint_stride or (template_checkpoint or {}).get("stride") or \
        max(1, min(DEFAULT_CHECKPOINT_STRIDE, steps // 10))

    source = read_source(opts)
    picked, selection = choose_frames(source, opts)
    seed = opts.seed if opts.seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31))
    if not source.trajectory_velocities:
        if not source.info.temperature_K:
            raise InputError(f"{source.paths[0]}: cannot tell the temperature of the run: give --temperature")
        _say(opts, f"velocities drawn from Maxwell-Boltzmann at {source.info.temperature_K:.2f} K "
                   f"({source.info.notes.get('temperature')}), zero total momentum")

    _make_run_dir(run_dir, opts.force)
    replicas = write_replicas(run_dir, tree, template_path, source, picked, seed, steps, stride, mode)

    nve_dt = template_info.timestep_fs
    manifest = Manifest(
        created=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        command=" ".join(sys.argv),
        ipi_dipole_version=_version(),
        ipi_version=_ipi_version(),
        run_dir=str(run_dir),
        template={"path": str(template_path), "sha256": sha256(template_path)},
        source={
            "trajectory": [str(Path(p).resolve()) for p in source.paths],
            "velocity_trajectory": str(Path(source.velocity_path).resolve()) if source.velocity_path else None,
            "properties": str(Path(source.properties_path).resolve()) if source.properties_path else None,
            "frames_usable": len(source.frames),
            "timestep_fs": source.info.timestep_fs,
            "temperature_K": source.info.temperature_K,
            "notes": source.info.notes,
        },
        selection=selection,
        velocities="from-trajectory" if source.trajectory_velocities else "maxwell-boltzmann",
        seed=seed,
        steps=steps,
        nve_timestep_fs=nve_dt,
        checkpoint_stride=stride,
        forcefield=mode,
        driver_command=opts.driver,
        replicas=replicas,
        log=opts.log,
    )
    path = ipi_io.write_manifest(run_dir, manifest)
    print(f"wrote {opts.n} replicas ({steps} NVE steps each, checkpoint every {stride}) and {path}")
    return manifest


def read_source(opts: PrepareOptions) -> Source:
    """Frames of the equilibration run with their times, and where velocities come from."""
    traj = [Path(p) for p in opts.trajectory]
    frames = src.read_frames(traj)
    if not frames:
        raise InputError(f"{traj[0]}: no frames")
    natoms = len(frames[0].symbols)
    _say(opts, f"read {len(frames)} frames of {natoms} atoms from {', '.join(map(str, traj))}")

    props_path = opts.properties or src.find_properties(traj[0])
    props = ipi_io.read_properties(props_path) if props_path else None
    info = src.run_info(traj[0], props, src.find_run_xml(traj[0]))
    if opts.equil_timestep_fs:
        info.timestep_fs, info.notes["timestep"] = opts.equil_timestep_fs, "--equil-timestep-fs"
    if opts.temperature:
        info.temperature_K, info.notes["temperature"] = opts.temperature, "--temperature"

    vel_path = None
    have_frame_velocities = all(f.velocities is not None for f in frames)
    if opts.velocities != "maxwell-boltzmann" and not have_frame_velocities:
        vel_path = opts.velocity_trajectory or src.find_velocity_trajectory(traj[0], natoms)
    use_traj_v = opts.velocities in ("auto", "from-trajectory") and bool(have_frame_velocities or vel_path)
    if opts.velocities == "from-trajectory" and not use_traj_v:
        raise InputError(f"{traj[0]}: no velocities found (no momenta in the frames, no i-PI velocity "
                         f"trajectory beside it): give --velocity-trajectory or --velocities maxwell-boltzmann")
    vel_by_step = None
    if use_traj_v and not have_frame_velocities:
        vel_by_step = src.read_velocity_frames(vel_path)
        frames = [f for f in frames if f.step in vel_by_step]
        if not frames:
            raise InputError(f"{vel_path}: no frame shares a step with {traj[0]}")
        _say(opts, f"velocities from {vel_path} ({len(frames)} frames with both positions and velocities)")
    else:
        vel_path = None

    if all(f.step is not None for f in frames):
        if not info.timestep_fs:
            raise InputError(f"{traj[0]}: cannot tell the time step of the run (no i-PI input, checkpoint "
                             f"or properties file with time beside it): give --equil-timestep-fs")
        times_ps = np.array([f.step for f in frames], float) * info.timestep_fs / 1000.0
    elif opts.frame_interval_fs:
        times_ps = np.arange(len(frames)) * opts.frame_interval_fs / 1000.0
        info.notes["frame_times"] = "--frame-interval-fs"
    else:
        raise InputError(f"{traj[0]}: frames carry no step numbers: give --frame-interval-fs")
    order = np.argsort(times_ps, kind="stable")
    return Source(traj, [frames[i] for i in order], times_ps[order], info, props, props_path,
                  vel_path, use_traj_v, vel_by_step)


def choose_frames(source: Source, opts: PrepareOptions) -> tuple[np.ndarray, dict]:
    """Indices of the starting frames, and how they were chosen (for the manifest)."""
    times_ps = source.times_ps
    if opts.min_separation_ps is not None:
        separation = float(opts.min_separation_ps)
        selection = {"separation_from": "--min-separation-ps"}
    else:
        separation, selection = _separation_from_correlation(source.paths[0], source.properties,
                                                             source.info, opts)
    skip = separation if opts.skip_ps is None else float(opts.skip_ps)
    usable = np.nonzero(times_ps >= times_ps[0] + skip - 1e-12)[0]
    try:
        picked = usable[sel.spread_selection(times_ps[usable], opts.n, separation)]
    except sel.NotEnoughFrames as exc:
        raise InputError(
            f"{source.paths[0]}: only {exc.fit} frame(s) fit {separation:.4g} ps apart, {opts.n} replicas "
            f"asked for. The run has {len(times_ps)} usable frames from {times_ps[0]:.4g} to "
            f"{times_ps[-1]:.4g} ps, of which the first {skip:.4g} ps are skipped (--skip-ps). "
            f"Ask for at most {exc.fit} replicas, give a smaller --min-separation-ps or --skip-ps, "
            f"or run the equilibration longer"
            + (f" (separation: {selection['separation_from']})" if "tau_int_ps" in selection else "")) from None
    _say(opts, f"picked {opts.n} frames at least {separation:.4g} ps apart "
               f"(first {skip:.4g} ps of the run skipped): times "
               + ", ".join(f"{times_ps[i]:.4g}" for i in picked) + " ps")
    selection.update(min_separation_ps=separation, skip_ps=skip,
                     actual_min_separation_ps=float(np.min(np.diff(times_ps[picked]))) if opts.n > 1 else None)
    return picked, selection


def _make_run_dir(run_dir: Path, force: bool):
    run_dir.mkdir(parents=True, exist_ok=True)
    if force:  # outputs of an earlier run would otherwise be taken for this one's
        import shutil

        for old in run_dir.glob("replica_*"):
            if old.is_dir() and (old / INPUT).exists():
                shutil.rmtree(old)
        for name in (MANIFEST, "status.json"):
            (run_dir / name).unlink(missing_ok=True)


def write_replicas(run_dir, tree, template_path, source: Source, picked, seed, steps, stride, mode) -> list:
    """One directory per starting frame: start.xyz and input.xml. Returns the manifest entries."""
    frames, times_ps, vel_by_step = source.frames, source.times_ps, source.velocities_by_step
    children = np.random.SeedSequence(seed).spawn(len(picked))
    run_hash = hashlib.sha1(str(run_dir).encode()).hexdigest()[:6]
    base_port = _template_port(tree.getroot())
    replicas = []
    for k, i in enumerate(picked):
        fr = frames[i]
        name = replica_name(k)
        rdir = run_dir / name
        rdir.mkdir(exist_ok=True)
        rseed = int(children[k].generate_state(1)[0] % (2 ** 31 - 1)) or 1
        masses = ipi_io.ipi_masses_dalton(fr.symbols)
        if source.trajectory_velocities:
            v = fr.velocities if fr.velocities is not None else vel_by_step[fr.step]
            v = sel.remove_total_momentum(v, masses)
            vsource = "trajectory" if fr.velocities is not None else f"{source.velocity_path}:{fr.step}"
        else:
            v = sel.maxwell_boltzmann(masses, source.info.temperature_K, np.random.default_rng(children[k]))
            vsource = "maxwell-boltzmann"
        cell, note = fr.cell, None
        if not np.any(cell):
            extent = fr.positions.max(axis=0) - fr.positions.min(axis=0)
            cell = np.diag(extent + VACUUM_PADDING)
            note = f"frame without a cell: cubic vacuum box of {VACUUM_PADDING} A padding"
        pos, vel, h = to_ipi_cell(fr.positions, v, cell)
        comment = f"Step: {fr.step} from {fr.origin}" if fr.step is not None else f"from {fr.origin}"
        ipi_io.write_ipi_xyz(rdir / START_POSITIONS, fr.symbols, pos, h, "positions{angstrom}", comment)
        settings = ReplicaSettings(name, rseed, steps, stride)
        if mode == "socket":
            settings.address = f"ipid{run_hash}_{k:03d}"
            settings.port = None if base_port is None else base_port + k
        edited = edit_template(tree, template_path.parent, settings, vel / ipi_io.velocity_to_angstrom_per_fs())
        ET.indent(edited, space="  ")
        edited.write(rdir / INPUT, encoding="unicode", xml_declaration=False)
        replicas.append(ReplicaEntry(
            name=name, directory=name, input=INPUT, input_sha256=sha256(rdir / INPUT),
            source=fr.origin, source_step=fr.step, source_time_ps=float(times_ps[i]),
            seed=rseed, velocities=vsource,
            kinetic_temperature_K=round(sel.kinetic_temperature(vel, masses), 3),
            note=note or None,
            socket={"address": settings.address, "port": settings.port} if mode == "socket" else None))
    return replicas


def _separation_from_correlation(traj, props, info, opts):
    """Default separation: SEPARATION_IN_TAU integrated autocorrelation times of the dipole or energy."""
    series, what, where = None, None, None
    dip = src.find_dipole_extras(traj)
    if dip is not None:
        dipole = ipi_io.read_extras(dip, "dipole")
        if len(dipole) > 10:
            series, what, where = (dipole.steps, dipole.values), "dipole", dip
    if series is None and props is not None:
        step = props.columns.get("step")
        for col in ("potential", "conserved", "kinetic_md"):
            y = props.columns.get(col)
            if step is not None and y is not None and len(y) > 10:
                series, what, where = (step, y), f"{col} energy" if col != "conserved" else col, props.path
                break
    if series is None:
        raise InputError(f"{traj}: no dipole extras or properties file with a step and potential column "
                         f"beside it to estimate the correlation time: give --min-separation-ps")
    if not info.timestep_fs:
        raise InputError(f"{traj}: cannot tell the time step of the run: give --equil-timestep-fs "
                         f"or --min-separation-ps")
    steps, y = series  # one record per step, in order: the readers keep the last copy of a repeated step
    steps = np.asarray(steps, float)
    dstep = np.median(np.diff(steps))
    tau_samples, reliable = sel.integrated_time(y)
    tau_ps = tau_samples * dstep * info.timestep_fs / 1000.0
    separation = SEPARATION_IN_TAU * tau_ps
    msg = (f"separation {separation:.4g} ps = {SEPARATION_IN_TAU:g} x the integrated autocorrelation "
           f"time of the {what} ({tau_ps:.4g} ps, from {where})")
    if not reliable:
        msg += "; WARNING: the run is short for this estimate (under ~50 correlation times), treat it as a lower bound"
    _say(opts, msg)
    return separation, {"separation_from": msg, "tau_int_ps": tau_ps, "tau_series": what,
                        "tau_file": str(where), "tau_reliable": reliable,
                        "separation_in_tau": SEPARATION_IN_TAU}


def _version():
    from ipi_dipole import __version__

    return __version__


def _ipi_version():
    try:
        from importlib.metadata import version

        return version("ipi")
    except Exception:
        return None
