"""The time derivative of the cell dipole, ``Mdot``, from Born charges or from the dipole.

- ``Z* . v`` (the paper's Eq. 4): ``Mdot_a(t) = sum_i sum_b Z[i, a, b](t) v_ib(t)``, exact at
  every frame that has both Born charges and velocities.
- finite differences of the dipole: between frames, ``(M[n+1] - M[n]) / dt`` (``dipole-fd``,
  response ``sinc(w dt / 2)`` times the exact derivative's, above 2/pi up to the Nyquist
  frequency), and centred, ``(M[n+1] - M[n-1]) / (2 dt)`` (``dipole-mdot`` without Born
  charges, which needs the derivative at the dipole's own times; response ``sinc(w dt)``).

Which derivative is "the" ``Mdot`` of an MD trajectory? Velocity Verlet (i-PI, LAMMPS,
CP2K, VASP...) has ``v[n] = (x[n+1] - x[n-1]) / (2 h)`` exactly, ``h`` the MD step, so
``Z* . v`` is the centred difference of ``M`` over one MD step, and the thermostat and the
initial Maxwell-Boltzmann draw make *these* velocities obey equipartition. The exact time
derivative of the same trajectory is larger by ``1 / sinc(w h)`` (~2 % at 3700 cm^-1 for
h = 0.5 fs). The estimators here all aim at the ``Z* . v`` convention of the paper's Eq. 4:
:func:`estimator_factor` is the factor that brings each to the spectrum of the velocity-
Verlet ``Mdot`` with MD step ``h`` (``h = 0`` for exact derivatives, e.g. analytic
trajectories).

Born charges written at a larger stride than the velocities (BEC every step costs ~10x
i-PI's own step) are matched to the velocities in one of two documented ways, see
:func:`align_bec_to_velocities`.
"""

from __future__ import annotations

import numpy as np

from ipi_dipole.errors import InputError

#: ways of matching Born charges written less often than the velocities
BEC_MATCHING = ("common", "linear")


def mdot_from_born_charges(born_charges: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """``Mdot_a = sum_ib Z[i, a, b] v_ib`` per frame.

    Parameters
    ----------
    born_charges : array (T, N, 3, 3)
        ``Z[t, i, a, b] = dM_a / dx_ib`` in e.
    velocities : array (T, N, 3)
        Angstrom/fs.

    Returns
    -------
    numpy.ndarray, shape (T, 3)
        ``dM/dt`` in e*Angstrom/fs.
    """
    z = np.asarray(born_charges, dtype=float)
    v = np.asarray(velocities, dtype=float)
    if z.ndim != 4 or z.shape[2:] != (3, 3) or v.shape != z.shape[:2] + (3,):
        raise InputError(f"Born charges (T, N, 3, 3) and velocities (T, N, 3) do not match: "
                         f"{z.shape} and {v.shape}")
    return np.einsum("tiab,tib->ta", z, v)


def mdot_finite_difference(dipole: np.ndarray, timestep_fs: float) -> np.ndarray:
    """Centred difference ``(M[n+1] - M[n-1]) / (2 dt)`` for frames 1..T-2.

    Parameters
    ----------
    dipole : array (T, 3)
        e*Angstrom, with lattice-quantum jumps already removed.
    timestep_fs : float
        Time between frames in fs.

    Returns
    -------
    numpy.ndarray, shape (T - 2, 3)
        e*Angstrom/fs, at the times of frames 1..T-2.
    """
    m = np.asarray(dipole, dtype=float)
    if len(m) < 3:
        raise InputError("the finite-difference Mdot needs at least 3 dipole frames")
    return (m[2:] - m[:-2]) / (2.0 * timestep_fs)


def mdot_midpoint_difference(dipole: np.ndarray, timestep_fs: float) -> np.ndarray:
    """Forward difference ``(M[n+1] - M[n]) / dt``, the derivative at the midpoints of frames.

    For the autocorrelation (``dipole-fd``) the half-frame shift does not matter, and its
    response ``sinc(w dt / 2)`` stays above 2/pi up to the Nyquist frequency, where the
    centred difference's falls to zero at the Nyquist frequency: with a dipole written
    every 4 fs (Nyquist 4170 cm^-1), the centred difference keeps 3 % of the O-H
    stretch's intensity, this one 53 %, which the estimator factor then restores.

    Parameters
    ----------
    dipole : array (T, 3)
        e*Angstrom, with lattice-quantum jumps already removed.
    timestep_fs : float
        Time between frames in fs.

    Returns
    -------
    numpy.ndarray, shape (T - 1, 3)
        e*Angstrom/fs.
    """
    m = np.asarray(dipole, dtype=float)
    if len(m) < 3:
        raise InputError("the finite-difference Mdot needs at least 3 dipole frames")
    return (m[1:] - m[:-1]) / timestep_fs


def midpoint_difference_response(omega: np.ndarray, timestep_fs: float) -> np.ndarray:
    """Amplitude response ``sin(w dt / 2) / (w dt / 2)`` of :func:`mdot_midpoint_difference`
    (``omega`` in rad/fs, ``timestep_fs`` in fs); at least 2/pi below the Nyquist frequency,
    and capped there above it."""
    x = np.minimum(np.abs(np.asarray(omega, dtype=float)) * timestep_fs / 2, np.pi / 2)
    return np.sinc(x / np.pi)


def finite_difference_response(omega: np.ndarray, timestep_fs: float) -> np.ndarray:
    """Amplitude response ``sin(w dt) / (w dt)`` of the centred difference.

    Parameters
    ----------
    omega : array
        Angular frequency in rad/fs.
    timestep_fs : float
        Time between frames in fs.

    Returns
    -------
    numpy.ndarray
        The ratio of the difference's amplitude to the true derivative's; its square
        multiplies the power spectrum. Capped below at its value at ``w dt = pi/2``
        (half the Nyquist frequency, 0.64) so that dividing by it stays bounded where
        the finite difference has no information left.
    """
    x = np.minimum(np.abs(np.asarray(omega, dtype=float)) * timestep_fs, np.pi / 2)
    return np.sinc(x / np.pi)


def estimator_factor(estimator: str, omega, frame_fs: float, md_step_fs: float,
                     mdot_from_velocities: bool = True) -> np.ndarray:
    """Factor bringing an estimator's spectrum to that of the velocity-Verlet ``Mdot``.

    Parameters
    ----------
    estimator : {"zv", "dipole-fd", "dipole-w2", "dipole-mdot"}
    omega : array
        Angular frequency, rad/fs.
    frame_fs : float
        Time between the frames the estimator uses, fs.
    md_step_fs : float
        MD integrator step ``h`` whose velocity-Verlet velocities define ``Mdot``; 0 when
        the velocities are exact time derivatives.
    mdot_from_velocities : bool
        For ``dipole-mdot``: ``Mdot`` is ``Z* . v`` (True) or the finite difference (False).

    Returns
    -------
    numpy.ndarray
        ``zv``: 1. ``dipole-fd`` (the midpoint difference): ``(sinc(w h) / sinc(w dt / 2))^2``.
        ``dipole-w2``: ``sinc(w h)^2``. ``dipole-mdot``: ``sinc(w h)`` with ``Z* . v``,
        ``sinc(w h)^2 / sinc(w dt)`` with the finite difference. Divisions use the capped
        :func:`finite_difference_response`.
    """
    omega = np.asarray(omega, dtype=float)
    verlet = np.sinc(omega * md_step_fs / np.pi)
    if estimator == "zv":
        return np.ones_like(omega)
    if estimator == "dipole-fd":
        return (verlet / midpoint_difference_response(omega, frame_fs)) ** 2
    if estimator == "dipole-w2":
        return verlet ** 2
    if estimator == "dipole-mdot":
        if mdot_from_velocities:
            return verlet
        return verlet ** 2 / finite_difference_response(omega, frame_fs)
    raise ValueError(f"unknown estimator {estimator!r}")


def align_bec_to_velocities(bec_steps, bec, velocity_steps, velocities, matching: str = "common"):
    """Put Born charges and velocities on the same frames.

    Parameters
    ----------
    bec_steps, velocity_steps : arrays of int
        i-PI step labels (increasing).
    bec : array (Tb, N, 3, 3)
        Born charges (e).
    velocities : array (Tv, N, 3)
        Angstrom/fs.
    matching : {"common", "linear"}
        ``common``: keep only the steps present in both files (exact Eq. 4; the series is
        sampled at the coarser stride, which lowers the Nyquist frequency).
        ``linear``: keep every velocity frame inside the span of the Born-charge frames and
        interpolate ``Z*`` linearly in time between Born-charge frames (an approximation:
        ``Z*`` changes with the vibrations themselves).

    Returns
    -------
    steps, bec, velocities
        On the same frames.
    """
    bec_steps = np.asarray(bec_steps)
    velocity_steps = np.asarray(velocity_steps)
    if matching == "common":
        steps, ib, iv = np.intersect1d(bec_steps, velocity_steps, return_indices=True)
        if len(steps) < 3:
            raise InputError(f"Born charges and velocities share only {len(steps)} steps")
        return steps, np.asarray(bec)[ib], np.asarray(velocities)[iv]
    if matching == "linear":
        inside = (velocity_steps >= bec_steps[0]) & (velocity_steps <= bec_steps[-1])
        steps = velocity_steps[inside]
        if len(steps) < 3:
            raise InputError("fewer than 3 velocity frames lie within the Born-charge frames")
        z = np.asarray(bec)
        flat = z.reshape(len(z), -1)
        interp = np.empty((len(steps), flat.shape[1]))
        hi = np.clip(np.searchsorted(bec_steps, steps), 1, len(bec_steps) - 1)
        lo = hi - 1
        frac = ((steps - bec_steps[lo]) / (bec_steps[hi] - bec_steps[lo]))[:, None]
        interp[:] = (1 - frac) * flat[lo] + frac * flat[hi]
        return steps, interp.reshape((len(steps),) + z.shape[1:]), np.asarray(velocities)[inside]
    raise ValueError(f"matching must be one of {BEC_MATCHING}, got {matching!r}")
