"""Plot a replica-averaged spectrum with its error band (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ipi_dipole.errors import InputError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'ipi-dipole[matplotlib]' "
                         "(the CSV was written without it)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_spectrum(path, result, *, experiment=None, bands=(), max_cm1: float | None = None,
                  title: str | None = None, components: bool = False, reference_lines=(),
                  reference_label: str = "reference", harmonic=None):
    """Save a PNG of ``alpha n`` (cm^-1) against wavenumber (cm^-1).

    Parameters
    ----------
    path : path-like
        Output image.
    result : ReplicaAverage
        The mean is drawn as a line, mean +- 2 standard errors as a band (when defined).
    experiment : MeasuredSpectrum, optional
        Measured ``alpha n`` on the same axes.
    bands : sequence of (position_cm1, height)
        Marked with their positions.
    max_cm1 : float, optional
        Right end of the axis.
    components : bool
        Also draw xx, yy, zz.
    reference_lines : sequence of float
        Wavenumbers (cm^-1) drawn as thin vertical lines, e.g. harmonic frequencies.
    reference_label : str
        Legend entry of those lines.
    harmonic : HarmonicOverlay, optional
        The 0 K harmonic reference (:func:`ipi_dipole.analysis.harmonic_spectrum.load_overlay`),
        drawn as a dashed curve or as sticks in the same units.
    """
    plt = _pyplot()
    x = result.wavenumber_cm1
    hi = max_cm1 or float(x[-1])
    sel = x <= hi
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    mean, err = result.isotropic[sel], result.isotropic_stderr[sel]
    label = f"{result.info.get('estimator', 'Green-Kubo')}, {result.n_replicas} replica(s)"
    ax.plot(x[sel], mean, color="C0", lw=1.2, label=label)
    if np.all(np.isfinite(err)):
        ax.fill_between(x[sel], mean - 2 * err, mean + 2 * err, color="C0", alpha=0.3, lw=0,
                        label="+-2 standard errors")
    if components:
        for k, name in enumerate("xyz"):
            ax.plot(x[sel], result.components[sel, k], lw=0.6, alpha=0.7, label=f"{name}{name}")
    if experiment is not None:
        ex = experiment.wavenumber_cm1 <= hi
        ax.plot(experiment.wavenumber_cm1[ex], experiment.alpha_n_cm1[ex], color="k", lw=1.0,
                ls="--", label=f"experiment ({experiment.label})")
    for k, pos in enumerate(w for w in reference_lines if w <= hi):
        ax.axvline(pos, color="C3", lw=0.8, ls=":", label=reference_label if k == 0 else None)
    if harmonic is not None and harmonic.alpha_n_cm1 is not None:
        hx = harmonic.wavenumber_cm1 <= hi
        ax.plot(harmonic.wavenumber_cm1[hx], harmonic.alpha_n_cm1[hx], color="C2", lw=1.0, ls="--",
                label=harmonic.label)
    if harmonic is not None and harmonic.stick_cm1 is not None:
        hx = harmonic.stick_cm1 <= hi
        ax.vlines(harmonic.stick_cm1[hx], 0, harmonic.stick_height_cm1[hx], color="C2", lw=1.2,
                  label=harmonic.label)
    for pos, height in bands:
        if pos <= hi:
            ax.annotate(f"{pos:.0f}", (pos, height), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=7)
    ax.set_xlim(0, hi)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel(r"$\alpha(\omega)\,n(\omega)$ (cm$^{-1}$)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    try:
        fig.savefig(Path(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot write the plot: {exc}") from None
    finally:
        plt.close(fig)
