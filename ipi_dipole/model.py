"""Derivative learning of the polarization: a kernel model of the dipole fitted on Born charges.

The model (Schmiedmayer & Kresse, J. Chem. Phys. 2024, "derivative learning")
------------------------------------------------------------------------------------
Every atom ``j`` of species ``J`` contributes a vector to the dipole,

    M_a = sum_i Zbar_J(i) x_ia + sum_j sum_(r in refs of J) sum_b w[r, b] K_ab(X_j, X_r),
    K_ab(X, X') = sum_f D~[f, a](X) D~[f, b](X') * ((1 + k(X, X')) / 2)^zeta,

with ``D~`` the standardised lambda = 1 descriptors of :mod:`ipi_dipole.descriptors`
(each feature divided by its root-mean-square norm over the training atoms of species ``J``,
a rotation-invariant per-feature weight, so that the ridge penalty treats 2-, 3- and 4-body
features alike; the optional rank-3 block is further scaled by ``rank3_weight``), ``X_r``
sparse reference environments picked per species by farthest-point sampling, and ``k`` the
cosine similarity of standardised invariant features (``zeta = 0``, the default, is the
plain linear kernel; the constant in ``(1 + k) / 2`` keeps the linear kernel inside the
polynomial one). ``Zbar_J`` is the mean diagonal Born charge of species ``J`` in the
training set, ``sum_i Zbar_J(i) x_i`` the point-charge part of the dipole that is
subtracted before fitting and added back on prediction (dipole-only fits have no Born
charges: there the per-species charges are fitted together with the weights, keeping every
training composition at its total charge). The Born charges ``Z[i, a, b] = dM_a / dx_ib``
are the exact position derivative of this ``M``.

With the linear kernel the sum over references collapses to one coefficient vector per
species, ``c_J[f] = sum_(r, b) w[r, b] D~[f, b](X_r)``, so a prediction costs one pass of
descriptors and their gradient contracted with ``c`` through the density moments.

Fitting
-------
Regularised least squares in the subset-of-regressors form: minimise

    sum_(Z* rows) (dZ / s_Z)^2 + lambda_M sum_(M rows) (dM / s_M)^2 + regularization * w^T K_mm w / s^2

over the reference weights ``w``; ``s_Z`` and ``s_M`` are the pooled standard deviations of
the training Born-charge and dipole components (so residuals are dimensionless), ``s`` the one
of the fitted target (``s_Z`` unless only dipoles are fitted), and ``lambda_M`` is 1 for
``targets="dipole"`` and ``dipole_weight`` for ``targets="both"``: each dipole component's
normalised squared error counts ``dipole_weight`` times a Born-charge component's (a water
dimer has 3 dipole and 54 Born-charge components per structure).
For the linear kernel ``w^T K_mm w = |c|^2`` and the problem is ridge regression on ``c``
restricted to the span of the reference descriptors; it is solved in an orthonormal basis of
that span (numerically stable even when there are more reference components than features),
accumulating the normal equations structure by structure (symmetric rank-k updates) in
feature space and projecting them once. The polynomial kernel is solved the same way in
the eigenbasis of ``K_mm``; its design matrix costs one gradient pass per reference
component, which is affordable for molecules, slow for bulk cells.

Periodic cells: the cell dipole is defined only up to a polarization quantum, so their
dipoles are not fitted unless ``periodic_dipole=True`` (with a warning); Born charges are.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from . import data, metrics
from .descriptors import KINDS, DescriptorSettings, Environments, make_descriptor, settings_from_dict
from .errors import InputError

__all__ = ["PolarizationModel", "PolarizationCalculator", "FORMAT_VERSION"]

# 2: descriptor settings nested under "descriptor" in the hyper-parameters (1: flat)
FORMAT_VERSION = 2
_KIND = "ipi-dipole PolarizationModel"
_TARGETS = ("bec", "dipole", "both")


#: tests force the per-structure projection of the linear fit on (True) or off (False)
_PROJECT_ROWS = None


class PolarizationModel:
    """Dipole ``M`` and Born charges ``Z*`` of molecules and periodic cells, learned from ``Z*``.

    Parameters
    ----------
    descriptor : DescriptorSettings or dict
        Descriptor hyper-parameters: cutoff (Angstrom), radial functions, 4-body channels,
        rank-3 weight (see :class:`~ipi_dipole.descriptors.DescriptorSettings`); a dict is
        read by :func:`~ipi_dipole.descriptors.settings_from_dict`. Default: its defaults.
    n_ref : int
        Reference environments per species (farthest-point sampled from the training set).
        With the linear kernel, ``3 n_ref >= n_features`` spans the full feature space.
    targets : {"bec", "dipole", "both"}
        What to fit: Born charges only, dipoles only, or both (dipoles weighted by
        ``dipole_weight``).
    dipole_weight : float
        Weight of a normalised dipole component relative to a normalised Born-charge
        component when ``targets="both"`` (see the module docstring).
    regularization : float
        Ridge parameter on the normalised problem (dimensionless, see the module docstring).
    seed : int
        Seed of the farthest-point sampling start and of candidate subsampling.
    zeta : int
        Power of the scalar kernel multiplying the linear lambda = 1 kernel; 0 = linear model.
    periodic_dipole : bool
        Fit the dipoles of periodic cells too (only sensible when they sit on one branch of
        the polarization lattice).
    max_candidates : int
        At most this many environments per species enter the farthest-point sampling
        (a random subset when there are more).

    Attributes
    ----------
    Set by :meth:`fit` (or :meth:`load`), scikit-learn style with a trailing underscore:
    ``species_`` (chemical symbols), ``descriptor_`` (the built
    :class:`~ipi_dipole.descriptors.Descriptor`), ``zbar_`` (S,) point charges in e,
    ``feature_scale_`` (S, F), ``ref_descriptors_`` (n_ref_total, F, 3) standardised,
    ``ref_species_``, ``ref_weights_`` (n_ref_total, 3), ``coefficients_`` (S, F; linear
    kernel) or ``ref_invariants_`` and ``invariant_scale_`` (polynomial kernel),
    ``sigma_bec_`` (e) and ``sigma_dipole_`` (e*Angstrom) the target scales, and
    ``training_info_`` (dict of training-set sizes and errors).
    """

    def __init__(self, descriptor: DescriptorSettings | dict | None = None, n_ref: int = 500,
                 targets: str = "bec", dipole_weight: float = 10.0, regularization: float = 1e-3,
                 seed: int = 0, zeta: int = 0, periodic_dipole: bool = False,
                 max_candidates: int = 5000):
        if descriptor is None:
            descriptor = DescriptorSettings()
        elif isinstance(descriptor, dict):
            descriptor = settings_from_dict(descriptor)
        elif not isinstance(descriptor, tuple(KINDS.values())):
            raise InputError(f"descriptor must be a DescriptorSettings or a dict, got {descriptor!r}")
        if targets not in _TARGETS:
            raise InputError(f"targets must be one of {', '.join(_TARGETS)}, got {targets!r}")
        if n_ref < 1:
            raise InputError(f"n_ref must be at least 1, got {n_ref}")
        if dipole_weight < 0 or regularization < 0:
            raise InputError("dipole_weight and regularization must not be negative")
        if int(zeta) != zeta or zeta < 0:
            raise InputError(f"zeta must be a non-negative integer, got {zeta}")
        self.descriptor = descriptor
        self.n_ref = int(n_ref)
        self.targets = targets
        self.dipole_weight = float(dipole_weight)
        self.regularization = float(regularization)
        self.seed = int(seed)
        self.zeta = int(zeta)
        self.periodic_dipole = bool(periodic_dipole)
        self.max_candidates = int(max_candidates)

    # ------------------------------------------------------------------------------------
    # hyper-parameters
    # ------------------------------------------------------------------------------------
    def get_params(self) -> dict:
        """Hyper-parameters: what ``__init__`` and :meth:`set_params` take (``descriptor`` as
        the settings object)."""
        return {"descriptor": self.descriptor, "n_ref": self.n_ref, "targets": self.targets,
                "dipole_weight": self.dipole_weight, "regularization": self.regularization,
                "seed": self.seed, "zeta": self.zeta, "periodic_dipole": self.periodic_dipole,
                "max_candidates": self.max_candidates}

    def set_params(self, **params) -> "PolarizationModel":
        """Change hyper-parameters (validated as by ``__init__``); returns self.

        Descriptor settings can be changed one at a time as ``descriptor__cutoff=4.5``
        (scikit-learn's nested form). A fitted model forgets its fit: the fitted attributes
        belong to the old hyper-parameters.

        Raises
        ------
        InputError
            On an unknown name or a bad value.
        """
        current = self.get_params()
        nested = {k.split("__", 1)[1]: params.pop(k) for k in list(params) if k.startswith("descriptor__")}
        unknown = sorted(set(params) - set(current))
        if unknown:
            raise InputError(f"unknown PolarizationModel parameter(s) {', '.join(unknown)} "
                             f"(known: {', '.join(current)})")
        merged = {**current, **params}
        if nested:
            base = merged["descriptor"]
            base = dict(base) if isinstance(base, dict) else base.to_dict()
            merged["descriptor"] = settings_from_dict({**base, **nested})
        self.__init__(**merged)
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)
        self.__dict__.pop("_ref_c", None)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"PolarizationModel({args})"

    @property
    def _fitted(self) -> bool:
        """Whether fit (or load) has run: the fitted attributes exist."""
        return hasattr(self, "ref_weights_") and hasattr(self, "descriptor_")

    # ------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------
    def fit(self, structures, progress: bool = False):
        """Fit on a list of data-set structures (see :mod:`ipi_dipole.data`); returns self.

        Parameters
        ----------
        structures : list of ase.Atoms
            Born charges in ``atoms.arrays["born_charges"]`` (e), dipoles as calculator
            results (e*Angstrom), positions and cells in Angstrom.
        progress : bool
            Show tqdm progress bars over structures.
        """
        structures = list(structures)
        if not structures:
            raise InputError("no training structures")
        if self.zeta and self.descriptor.kind != DescriptorSettings.kind:
            raise InputError(f"zeta > 0 (the polynomial kernel) needs the {DescriptorSettings.kind!r} "
                             f"descriptor, not {self.descriptor.kind!r}")
        use_z, use_m = self._select_rows(structures)
        self.species_ = sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})
        self.descriptor_ = make_descriptor(self.species_, self.descriptor)
        n_spec = len(self.species_)

        self.zbar_ = self._baseline(structures, use_z, use_m)
        z_all = [data.get_born_charges(a) for a, u in zip(structures, use_z) if u]
        m_all = [np.asarray(a.calc.results["dipole"]) for a, u in zip(structures, use_m) if u]
        self.sigma_bec_ = float(np.std(np.concatenate([z.ravel() for z in z_all]))) if z_all else 0.0
        self.sigma_dipole_ = float(np.std(np.concatenate(m_all))) if m_all else 0.0
        if z_all and self.sigma_bec_ <= 0:
            raise InputError("all training Born-charge components are equal: nothing to learn")
        if m_all and not z_all and self.sigma_dipole_ <= 0:
            raise InputError("all training dipole components are equal: nothing to learn")
        sigma = self.sigma_bec_ if z_all else self.sigma_dipole_

        # pass 1: environments, feature scales, reference candidates
        envs = []
        sumsq = np.zeros((n_spec, self.descriptor_.n_features))
        counts = np.zeros(n_spec, dtype=np.int64)
        # reference candidates: a uniform random subset of at most max_candidates environments
        # per species (smallest random keys), so memory stays bounded on large sets
        rng = np.random.default_rng(self.seed)
        cand = [_Reservoir(self.max_candidates) for _ in range(n_spec)]
        inv_sumsq = None
        for k, atoms in enumerate(_progress(structures, progress, "descriptors")):
            env = self.descriptor_.environments(atoms, where=f"training structure {k}")
            envs.append(env)
            feats = self.descriptor_.features(env)
            inv = self.descriptor_.invariants(env) if self.zeta else None
            if self.zeta and inv_sumsq is None:
                inv_sumsq = np.zeros((n_spec, inv.shape[1]))
            for t in range(n_spec):
                sel = env.centre_species == t
                if not sel.any():
                    continue
                sumsq[t] += (feats[sel] ** 2).sum(axis=(0, 2))
                counts[t] += sel.sum()
                if self.zeta:
                    inv_sumsq[t] += (inv[sel] ** 2).sum(axis=0)
                cand[t].add(rng, feats[sel].astype(np.float32), None if inv is None else inv[sel])
        rms = np.sqrt(sumsq / np.maximum(counts, 1)[:, None])
        self.feature_scale_ = np.where(rms > 1e-12 * rms.max(), 1.0 / np.where(rms > 0, rms, 1.0), 0.0)
        # per-feature prior scales of the descriptor kind (the moments' rank-3 block overfits
        # at full weight and gets rank3_weight)
        self.feature_scale_ *= self.descriptor_.feature_prior()[None, :]
        if self.zeta:
            irms = np.sqrt(inv_sumsq / np.maximum(counts, 1)[:, None])
            self.invariant_scale_ = np.where(irms > 1e-12 * irms.max(), 1.0 / np.where(irms > 0, irms, 1.0), 0.0)

        # sparse references per species
        ref_desc, ref_spec, ref_inv = [], [], []
        for t in range(n_spec):
            feats, invs = cand[t].arrays()
            feats = feats * self.feature_scale_[t][None, :, None].astype(np.float32)
            chosen = farthest_point_sampling(feats.reshape(len(feats), -1), min(self.n_ref, len(feats)), rng)
            ref_desc.append(feats[chosen].astype(float))
            ref_spec.append(np.full(len(chosen), t))
            if self.zeta:
                inv = invs[chosen] * self.invariant_scale_[t]
                ref_inv.append(inv / np.maximum(np.linalg.norm(inv, axis=1, keepdims=True), 1e-300))
        del cand
        self.ref_descriptors_ = np.concatenate(ref_desc)  # (n_ref_total, F, 3), standardised
        self.ref_species_ = np.concatenate(ref_spec).astype(np.int64)
        if self.zeta:
            self.ref_invariants_ = np.concatenate(ref_inv)  # (n_ref_total, P), unit vectors

        if self.zeta:
            self._fit_kernel(structures, envs, use_z, use_m, sigma, progress)
        else:
            self._fit_linear(structures, envs, use_z, use_m, sigma, progress)

        # residuals of the fitted rows only (a periodic dipole that was not fitted is left out)
        fitted_m, fitted_z = ([], []), ([], [])
        for atoms, env, uz, um in zip(structures, envs, use_z, use_m):
            m, z = self._predict_env(atoms, env)
            if uz:
                fitted_z[0].append(z)
                fitted_z[1].append(data.get_born_charges(atoms))
            if um:
                fitted_m[0].append(m)
                fitted_m[1].append(atoms.calc.results["dipole"])
        self.training_info_ = {
            "n_structures": len(structures),
            "n_atoms": int(sum(len(a) for a in structures)),
            "n_references": {s: int((self.ref_species_ == t).sum()) for t, s in enumerate(self.species_)},
            "zbar": {s: float(self.zbar_[t]) for t, s in enumerate(self.species_)},
            "bec_rmse": metrics.rmse(*fitted_z), "dipole_rmse": metrics.rmse(*fitted_m),
            "sigma_bec": self.sigma_bec_ or None, "sigma_dipole": self.sigma_dipole_ or None,
        }
        return self

    def _select_rows(self, structures):
        """Which structures contribute Born-charge rows and which dipole rows."""
        use_z, use_m = [], []
        skipped_pbc = 0
        for k, atoms in enumerate(structures):
            z = data.get_born_charges(atoms)
            has_m = atoms.calc is not None and "dipole" in atoms.calc.results
            periodic = bool(atoms.pbc.any())
            if self.targets in ("bec", "both"):
                if z is None and self.targets == "bec":
                    raise InputError(f"training structure {k} has no Born charges "
                                     f"('{data.BORN_KEY}' array), needed for targets='bec'")
                use_z.append(z is not None)
            else:
                use_z.append(False)
            if self.targets in ("dipole", "both"):
                if not has_m and self.targets == "dipole":
                    raise InputError(f"training structure {k} has no dipole, needed for targets='dipole'")
                if has_m and periodic and not self.periodic_dipole:
                    skipped_pbc += 1
                    use_m.append(False)
                else:
                    use_m.append(has_m)
            else:
                use_m.append(False)
            if z is not None and not np.all(np.isfinite(z)):
                raise InputError(f"training structure {k} has non-finite Born charges")
            if use_m[-1] and not np.all(np.isfinite(atoms.calc.results["dipole"])):
                raise InputError(f"training structure {k} has a non-finite dipole")
        if self.targets == "dipole" and all(bool(a.pbc.any()) for a in structures) and not self.periodic_dipole:
            raise InputError("targets='dipole' on periodic cells: their dipoles are defined only up to "
                             "a polarization quantum; fit Born charges (targets='bec') or pass "
                             "periodic_dipole=True")
        if skipped_pbc:
            warnings.warn(f"{skipped_pbc} periodic structure(s): their dipoles are defined only up to a "
                          f"polarization quantum and are not fitted (periodic_dipole=True to insist)",
                          stacklevel=3)
        if self.targets == "both" and not any(use_z):
            raise InputError("targets='both' but no training structure has Born charges")
        if self.targets == "both" and not any(use_m):
            raise InputError("targets='both' but no usable dipole in the training set "
                             "(periodic cells' dipoles are skipped)")
        return use_z, use_m

    def _baseline(self, structures, use_z, use_m) -> np.ndarray:
        """Per-species mean diagonal Born charge Zbar_J (e), from the training Born charges.

        Without Born charges (dipole-only training) the point charges are instead fitted
        together with the model (:meth:`_charge_rows`, :meth:`_solve`); zeros are returned here.
        """
        n_spec = len(self.species_)
        index = {s: i for i, s in enumerate(self.species_)}
        total = np.zeros(n_spec)
        count = np.zeros(n_spec)
        for atoms, u in zip(structures, use_z):
            if u:
                z = data.get_born_charges(atoms)
                t = np.array([index[s] for s in atoms.get_chemical_symbols()])
                np.add.at(total, t, np.trace(z, axis1=1, axis2=2) / 3.0)
                np.add.at(count, t, 1.0)
        return np.where(count > 0, total / np.maximum(count, 1), 0.0)

    def _charge_rows(self, structures, use_m):
        """Compositions ``n_J`` and total charges ``Q`` of the dipole-training structures.

        The point-charge part ``sum_J q_J sum_(i in J) x_i`` is translation invariant only
        when every training composition carries its total charge, ``sum_J n_J q_J = Q``:
        dipole-only fits keep the charges on that affine subspace exactly.
        """
        n_spec = len(self.species_)
        index = {s: i for i, s in enumerate(self.species_)}
        compositions = {}
        for atoms, u in zip(structures, use_m):
            if u:
                t = np.array([index[s] for s in atoms.get_chemical_symbols()])
                compositions[tuple(np.bincount(t, minlength=n_spec))] = data.total_charge(atoms)
        rows = np.array([c for c in compositions], dtype=float)
        return rows, np.array(list(compositions.values()))

    def _fit_linear(self, structures, envs, use_z, use_m, sigma, progress):
        """Linear kernel: ridge on ``c`` in an orthonormal basis of the reference span."""
        desc = self.descriptor_
        n_spec, n_feat = len(self.species_), desc.n_features
        bases = []  # per species (F, r_t), standardised-feature space
        for t in range(n_spec):
            refs = self.ref_descriptors_[self.ref_species_ == t]  # (n, F, 3)
            rmat = np.transpose(refs, (0, 2, 1)).reshape(-1, n_feat)  # rows D~[:, b](X_r)
            _, sv, vt = np.linalg.svd(rmat, full_matrices=False)
            keep = sv > sv[0] * 1e-8 if sv.size and sv[0] > 0 else np.zeros(0, bool)
            bases.append(vt[keep].T)
        offsets = np.concatenate([[0], np.cumsum([b.shape[1] for b in bases])])
        # raw features -> basis coordinates, block diagonal (one block per centre species)
        projection = [(slice(t * n_feat, (t + 1) * n_feat), slice(offsets[t], offsets[t + 1]),
                       np.ascontiguousarray(self.feature_scale_[t][:, None] * bases[t]))
                      for t in range(n_spec)]

        def design(atoms, env, uz, um):
            z_rows = m_rows = None
            if uz:
                z_rows = desc.feature_gradient_sum(env).reshape(-1, n_spec * n_feat)  # (9N, S F)
            if um:
                feats = desc.features(env)
                m_rows = np.concatenate([feats[env.centre_species == t].sum(axis=0).T
                                         for t in range(n_spec)], axis=1)
            return z_rows, m_rows

        v = self._solve(structures, envs, use_z, use_m, sigma, progress, int(offsets[-1]), design,
                        projection)
        # coefficients on the raw features, in physical units (e per feature unit)
        self.coefficients_ = np.zeros((n_spec, n_feat))
        self.ref_weights_ = np.zeros((len(self.ref_species_), 3))
        for t in range(n_spec):
            c_std = bases[t] @ v[offsets[t]:offsets[t + 1]] * sigma  # on standardised features
            self.coefficients_[t] = c_std * self.feature_scale_[t]
            refs = self.ref_descriptors_[self.ref_species_ == t]
            rmat = np.transpose(refs, (0, 2, 1)).reshape(-1, n_feat)
            w, *_ = np.linalg.lstsq(rmat.T, c_std, rcond=None)
            self.ref_weights_[self.ref_species_ == t] = w.reshape(-1, 3)

    def _fit_kernel(self, structures, envs, use_z, use_m, sigma, progress):
        """Polynomial kernel: subset of regressors, whitened by the eigenvectors of K_mm."""
        n_spec = len(self.species_)
        whiten = []  # per species: (3 n_ref_t, k_t) = V Lambda^(-1/2) of K_mm's range
        for t in range(n_spec):
            kmm = self._kernel_mm(t)
            lam, vec = np.linalg.eigh(kmm)
            keep = lam > lam.max() * 1e-10
            whiten.append(vec[:, keep] / np.sqrt(lam[keep]))
        offsets = np.concatenate([[0], np.cumsum([w.shape[1] for w in whiten])])

        def design(atoms, env, uz, um):
            z_k, m_k = self._kernel_design(env, uz, um)
            z_rows = None if z_k is None else np.concatenate(
                [z_k[t] @ whiten[t] for t in range(n_spec)], axis=1)
            m_rows = None if m_k is None else np.concatenate(
                [m_k[t] @ whiten[t] for t in range(n_spec)], axis=1)
            return z_rows, m_rows

        v = self._solve(structures, envs, use_z, use_m, sigma, progress, int(offsets[-1]), design)
        self.ref_weights_ = np.zeros((len(self.ref_species_), 3))
        for t in range(n_spec):
            w = whiten[t] @ v[offsets[t]:offsets[t + 1]] * sigma
            self.ref_weights_[self.ref_species_ == t] = w.reshape(-1, 3)
        self._prepare_kernel()

    def _solve(self, structures, envs, use_z, use_m, sigma, progress, n_model, design, projection=None):
        """Accumulate the normal equations structure by structure and solve them.

        ``design(atoms, env, use_z, use_m)`` returns the rows (9N, n_raw) of the Born charges
        and (3, n_raw) of the dipole; ``projection`` (n_raw, n_model; identity when None) maps
        them to coordinates ``v`` whose ridge penalty is ``|v|^2``, for a model
        ``sigma * rows @ projection @ v``. It is block diagonal, given as a list of
        ``(raw rows, model columns, block)``. Returns ``v``; sets ``self.zbar_`` for
        dipole-only fits.

        Each structure's rows are projected before they enter the normal equations when that
        is cheaper than accumulating them raw and projecting the sum once: with three species
        the raw rows are ~7000 wide against ~1500 model coordinates, and the rank-k update
        of the raw normal matrix dominated a BaTiO3 fit.
        """
        from scipy.linalg.blas import dsyrk

        n_spec = len(self.species_)
        # dipole-only: per-species point charges are unknowns too (no Born charges give Zbar):
        # q = q0 + null @ y, with q0 meeting every composition's total charge and y free
        joint = not any(use_z)
        if joint:
            comp, charge = self._charge_rows(structures, use_m)
            q0 = np.linalg.pinv(comp) @ charge
            _, sv, vt = np.linalg.svd(comp)
            null = vt[int((sv > 1e-10 * sv.max()).sum()):].T  # (S, S - rank)
            self.zbar_ = q0
        n_raw = n_model if projection is None else max(rows.stop for rows, _, _ in projection)
        # per structure: projecting costs ~ n_raw_block * n_model, the update n_cols^2 per row
        block_width = 0 if projection is None else max(b.shape[0] for _, _, b in projection)
        project_rows = projection is not None and (block_width * n_model + n_model ** 2 < n_raw ** 2
                                                   if _PROJECT_ROWS is None else _PROJECT_ROWS)

        def projected(raw):
            out = np.empty((raw.shape[0], n_model))
            for rows_, cols, block in projection:
                out[:, cols] = raw[:, rows_] @ block
            return out

        n_cols = n_model if project_rows or projection is None else n_raw
        n_extra = null.shape[1] if joint else 0
        # Fortran order: dsyrk updates the upper triangle in place
        a_mat = np.zeros((n_cols + n_extra, n_cols + n_extra), order="F")
        b_vec = np.zeros(n_cols + n_extra)
        # residuals in units of sigma, weighted: Z* rows by sigma / s_Z (= 1 whenever there are
        # Born charges), dipole rows by sqrt(lambda_M) sigma / s_M
        w_z = sigma / self.sigma_bec_ if self.sigma_bec_ > 0 else 0.0
        w_m = (np.sqrt(self.dipole_weight if self.targets == "both" else 1.0) * sigma / self.sigma_dipole_
               if self.sigma_dipole_ > 0 else 0.0)
        for atoms, env, uz, um in _progress(list(zip(structures, envs, use_z, use_m)), progress, "fit"):
            if not (uz or um):
                continue
            z_rows, m_rows = design(atoms, env, uz, um)
            if project_rows:
                z_rows = None if z_rows is None else projected(z_rows)
                m_rows = None if m_rows is None else projected(m_rows)
            base_m, base_z = self._baseline_values(atoms, env)
            blocks, targets = [], []
            if uz:
                blocks.append(z_rows if w_z == 1.0 else z_rows * w_z)  # (large: no needless copy)
                targets.append((data.get_born_charges(atoms) - base_z).ravel() * w_z / sigma)
            if um:
                if joint:
                    charges = np.stack([atoms.positions[env.centre_species == t].sum(axis=0)
                                        for t in range(n_spec)], axis=1)
                    m_rows = np.concatenate([m_rows, charges @ null], axis=1)
                blocks.append(m_rows * w_m)
                targets.append((np.asarray(atoms.calc.results["dipole"]) - base_m) * w_m / sigma)
            rows = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
            a_mat = dsyrk(1.0, rows.T, beta=1.0, c=a_mat, trans=0, overwrite_c=1)
            b_vec += rows.T @ np.concatenate(targets)
        a_mat = np.triu(a_mat) + np.triu(a_mat, 1).T
        if projection is not None and not project_rows:
            full = np.zeros((n_raw + n_extra, n_model + n_extra))
            for rows_, cols, block in projection:
                full[rows_, cols] = block
            full[n_raw:, n_model:] = np.eye(n_extra)
            a_mat = full.T @ a_mat @ full
            b_vec = full.T @ b_vec
        n_par = n_model + n_extra
        penalty = np.full(n_par, self.regularization)
        if joint:
            penalty[n_model:] = 0.0  # the point charges are not shrunk
        v = _solve_ridge(a_mat, b_vec, penalty)
        if joint:
            self.zbar_ = q0 + null @ v[n_model:] * sigma
        return v[:n_model]

    # polynomial kernel ------------------------------------------------------------------
    def _kernel_mm(self, t):
        """K_mm of species t: ``(D~_r[:, b] . D~_r'[:, b']) (q_r . q_r')^zeta``, (3 n, 3 n)."""
        refs = self.ref_descriptors_[self.ref_species_ == t]
        qr = self.ref_invariants_[self.ref_species_ == t]
        lin = np.einsum("rfb,sfc->rbsc", refs, refs)
        scal = self._scalar_kernel(qr @ qr.T)[0]
        n = len(refs)
        return (lin * scal[:, None, :, None]).reshape(3 * n, 3 * n)

    def _scalar_kernel(self, k):
        """``((1 + k) / 2)^zeta`` and its derivative: the constant term keeps the linear kernel in."""
        base = 0.5 * (1.0 + k)
        return base ** self.zeta, 0.5 * self.zeta * base ** (self.zeta - 1)

    def _kernel_inputs(self, env):
        """What both sides of the polynomial kernel need of every atom: standardised features
        ``D~`` (N, F, 3), scaled invariants ``p~`` (N, P), their norms and directions ``q``."""
        feats = self.descriptor_.features(env)
        scaled = feats * self.feature_scale_[env.centre_species][:, :, None]
        inv = self.descriptor_.invariants(env) * self.invariant_scale_[env.centre_species]
        norm = np.maximum(np.linalg.norm(inv, axis=1), 1e-300)
        return scaled, inv, norm, inv / norm[:, None]

    def _kernel_design(self, env, need_z, need_m):
        """Columns of K_nm per species: Z* rows (9N, 3 n_t) and dipole rows (3, 3 n_t)."""
        desc = self.descriptor_
        n_spec = len(self.species_)
        scaled, _, norm, q = self._kernel_inputs(env)
        z_out = [] if need_z else None
        m_out = [] if need_m else None
        for t in range(n_spec):
            sel = np.where(env.centre_species == t)[0]
            refs = self.ref_descriptors_[self.ref_species_ == t]
            qr = self.ref_invariants_[self.ref_species_ == t]
            n_r = len(refs)
            k = q[sel] @ qr.T  # (nJ, n_r)
            w, dw = self._scalar_kernel(k)
            tmat = np.einsum("jfa,rfb->jrab", scaled[sel], refs, optimize=True)  # (nJ, n_r, 3, 3)
            if need_m:
                m_out.append(np.einsum("jrab,jr->arb", tmat, w).reshape(3, 3 * n_r))
            if not need_z:
                continue
            cols = np.zeros((env.n_atoms, 3, 3, n_r, 3))  # [i, a, c, r, b]
            pairs = env.centre_species[env.first] == t
            sub = Environments(env.n_atoms, env.centre_species, env.first[pairs], env.second[pairs],
                               env.vectors[pairs], env.nbr_species[pairs], env.rho0, env.rho1, env.rho2,
                               env.rho3, env.unit[pairs], env.inv_r[pairs], env.radial[pairs],
                               env.dradial[pairs])
            scale_t = self.feature_scale_[t]
            iscale_t = self.invariant_scale_[t]
            # batches of references sized to keep the coefficient arrays near 100 MB
            batch = max(1, int(4e6 // (env.n_atoms * desc.n_features)))
            for lo in range(0, n_r, batch):
                hi = min(lo + batch, n_r)
                nb = hi - lo
                # per-atom coefficients of the lambda = 1 part, columns (r, b)
                c = np.zeros((env.n_atoms, 3 * nb, desc.n_features))
                c[sel] = (w[:, lo:hi, None, None] * np.transpose(refs[lo:hi], (0, 2, 1))[None]
                          * scale_t).reshape(len(sel), 3 * nb, -1)
                # scalar part: T[j, r, a, b] dw[j, r] dk[j, r] / dp_j, output index 3 (r, b) + a
                dk = (qr[None, lo:hi, :] - k[:, lo:hi, None] * q[sel][:, None, :]) \
                    * (iscale_t / norm[sel][:, None])[:, None, :]  # (nJ, nb, P)
                e = np.zeros((env.n_atoms, nb, 3, 3, dk.shape[2]))  # [j, r, b, a, P]
                e[sel] = np.einsum("jrab,jr,jrp->jrbap", tmat[:, lo:hi], dw[:, lo:hi], dk, optimize=True)
                g = desc.moment_coefficients(sub, c)
                h = desc.invariant_moment_coefficients(sub, e.reshape(env.n_atoms, 9 * nb, -1))
                out = desc.backprop(sub, g[0] + h[0], g[1] + h[1], g[2] + h[2], g[3])  # (N, 9 nb, 3)
                cols[:, :, :, lo:hi, :] = np.transpose(out.reshape(env.n_atoms, nb, 3, 3, 3), (0, 3, 4, 1, 2))
            z_out.append(cols.reshape(9 * env.n_atoms, 3 * n_r))
        return z_out, m_out

    def _prepare_kernel(self):
        """Per-reference coefficient vectors ``C_r = D~_r w_r`` used at prediction."""
        self._ref_c = np.einsum("rfb,rb->rf", self.ref_descriptors_, self.ref_weights_)

    def _predict_kernel(self, env):
        desc = self.descriptor_
        n_spec = len(self.species_)
        scaled, inv, norm, q = self._kernel_inputs(env)
        c = np.zeros((env.n_atoms, 1, desc.n_features))
        e = np.zeros((env.n_atoms, 3, inv.shape[1]))
        m = np.zeros(3)
        for t in range(n_spec):
            sel = np.where(env.centre_species == t)[0]
            if not len(sel):
                continue
            on = self.ref_species_ == t
            qr, cr = self.ref_invariants_[on], self._ref_c[on]
            k = q[sel] @ qr.T
            w, dw = self._scalar_kernel(k)
            u = np.einsum("jfa,rf->jra", scaled[sel], cr, optimize=True)  # sum_b w[r,b] T[j,r,a,b]
            m += np.einsum("jra,jr->a", u, w)
            c[sel, 0] = (w @ cr) * self.feature_scale_[t]
            ud = u * dw[:, :, None]
            e[sel] = (np.einsum("jra,rp->jap", ud, qr, optimize=True)
                      - np.einsum("jra,jr->ja", ud, k)[:, :, None] * q[sel][:, None, :]) \
                * (self.invariant_scale_[t] / norm[sel][:, None])[:, None, :]
        g = desc.moment_coefficients(env, c)
        h = desc.invariant_moment_coefficients(env, e)
        z = desc.backprop(env, g[0] + h[0], g[1] + h[1], g[2] + h[2], g[3])
        return m, z

    # ------------------------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not self._fitted:
            raise InputError("the model is not fitted: call fit() or PolarizationModel.load()")

    def _baseline_values(self, atoms, env: Environments):
        """Point-charge part: ``M0 = sum_i Zbar_J(i) x_i`` (e*A) and ``Z0[i] = Zbar_J(i) I`` (e)."""
        q = self.zbar_[env.centre_species]
        m0 = q @ atoms.positions
        z0 = q[:, None, None] * np.eye(3)[None]
        return m0, z0

    def predict(self, atoms, where: str = "structure", bec: bool = True):
        """Dipole and Born charges of one structure.

        Parameters
        ----------
        atoms : ase.Atoms
            Positions and cell in Angstrom; molecules (pbc False) or periodic cells.
        where : str
            How error messages name the structure (e.g. "test.xyz, structure 3").
        bec : bool
            Compute the Born charges; False returns ``(M, None)`` at about half the cost
            (the linear kernel skips its gradient pass).

        Returns
        -------
        M : numpy.ndarray, shape (3,)
            Dipole in e*Angstrom (for periodic cells: the one continuous branch given by the
            positions as they are, unwrapped).
        Z : numpy.ndarray, shape (N, 3, 3), or None
            ``Z[i, a, b] = dM_a / dx_ib`` in e, the exact derivative of ``M``.

        Raises
        ------
        InputError
            When the structure holds a species the model was not trained on.
        """
        self._check_fitted()
        # successive calls are usually MD steps: reuse the neighbour list (Verlet skin)
        env = self.descriptor_.environments(atoms, where=where, reuse=True)
        return self._predict_env(atoms, env, bec)

    def _predict_env(self, atoms, env: Environments, bec: bool = True):
        m0, z0 = self._baseline_values(atoms, env)
        desc = self.descriptor_
        if self.zeta:
            m, z = self._predict_kernel(env)
        elif bec:
            m, z = desc.linear_dipole(env, self.coefficients_)
        else:
            m, z = desc.linear_dipole(env, self.coefficients_, gradient=False)
        return m + m0, (z + z0 if bec else None)

    def calculator(self):
        """An ASE calculator: ``atoms.get_dipole_moment()`` and ``calc.results["born_charges"]``."""
        self._check_fitted()
        return PolarizationCalculator(self)

    # ------------------------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model to one ``.npz`` file (no pickle)."""
        self._check_fitted()
        arrays = {
            "kind": np.array(_KIND),
            "format_version": np.array(FORMAT_VERSION),
            "hyperparameters": np.array(json.dumps({**self.get_params(),
                                                    "descriptor": self.descriptor.to_dict()})),
            "training_info": np.array(json.dumps(self.training_info_)),
            "species": np.array(self.species_),
            "zbar": self.zbar_,
            "feature_scale": self.feature_scale_,
            "ref_descriptors": self.ref_descriptors_,
            "ref_species": self.ref_species_,
            "ref_weights": self.ref_weights_,
            "sigmas": np.array([self.sigma_bec_, self.sigma_dipole_]),
        }
        if self.zeta:
            arrays["ref_invariants"] = self.ref_invariants_
            arrays["invariant_scale"] = self.invariant_scale_
        else:
            arrays["coefficients"] = self.coefficients_
        path = Path(path)
        with open(path, "wb") as fh:  # np.savez would append .npz to other names
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path) -> "PolarizationModel":
        """Read a model written by :meth:`save` (of this or an earlier format version)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such model file")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:
            raise InputError(f"{path}: not a model file ({exc})") from exc
        if str(arrays.get("kind", "")) != _KIND:
            raise InputError(f"{path}: not an ipi-dipole PolarizationModel file")
        version = int(arrays["format_version"])
        if version > FORMAT_VERSION:
            raise InputError(f"{path}: model format version {version} is newer than this "
                             f"ipi-dipole understands ({FORMAT_VERSION}); upgrade ipi-dipole")
        params = json.loads(str(arrays["hyperparameters"]))
        if version == 1:
            params = _params_from_v1(params)
        model = cls(**params)
        model.training_info_ = json.loads(str(arrays["training_info"]))
        model.species_ = [str(s) for s in arrays["species"]]
        model.descriptor_ = make_descriptor(model.species_, model.descriptor)
        model.zbar_ = arrays["zbar"]
        model.feature_scale_ = arrays["feature_scale"]
        model.ref_descriptors_ = arrays["ref_descriptors"]
        model.ref_species_ = arrays["ref_species"]
        model.ref_weights_ = arrays["ref_weights"]
        model.sigma_bec_, model.sigma_dipole_ = (float(x) for x in arrays["sigmas"])
        if model.zeta:
            model.ref_invariants_ = arrays["ref_invariants"]
            model.invariant_scale_ = arrays["invariant_scale"]
            model._prepare_kernel()
        else:
            model.coefficients_ = arrays["coefficients"]
        return model


def _params_from_v1(params: dict) -> dict:
    """Hyper-parameters of a format-1 file (descriptor settings flat among the others)."""
    params = dict(params)
    names = ("cutoff", "n_radial", "n_radial4", "rank3_weight")
    params["descriptor"] = DescriptorSettings(**{k: params.pop(k) for k in names if k in params})
    return params


def farthest_point_sampling(x: np.ndarray, n: int, rng) -> np.ndarray:
    """Indices of ``n`` rows of ``x`` picked greedily, each farthest (Euclidean) from those before.

    The first row is drawn at random with ``rng``.
    """
    x = np.asarray(x)
    m = len(x)
    if n >= m:
        return np.arange(m)
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = rng.integers(m)
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    d = sq + sq[chosen[0]] - 2.0 * (x @ x[chosen[0]]).astype(np.float64)
    for k in range(1, n):
        chosen[k] = int(np.argmax(d))
        d = np.minimum(d, sq + sq[chosen[k]] - 2.0 * (x @ x[chosen[k]]).astype(np.float64))
    return chosen


class _Reservoir:
    """A uniform random sample of at most ``size`` rows from arrays added in chunks."""

    def __init__(self, size: int):
        self.size = size
        self.keys = np.zeros(0)
        self.rows: list = []
        self.extra: list = []

    def add(self, rng, rows, extra=None):
        self.keys = np.concatenate([self.keys, rng.random(len(rows))])
        self.rows.append(rows)
        self.extra.append(extra)
        if len(self.keys) > 2 * self.size:
            self._shrink()

    def _shrink(self):
        keep = np.sort(np.argsort(self.keys)[:self.size])
        self.keys = self.keys[keep]
        self.rows = [np.concatenate(self.rows)[keep]]
        self.extra = [None if self.extra[0] is None else np.concatenate(self.extra)[keep]]

    def arrays(self):
        if len(self.keys) > self.size:
            self._shrink()
        rows = np.concatenate(self.rows)
        extra = None if self.extra[0] is None else np.concatenate(self.extra)
        return rows, extra


def _solve_ridge(a_mat, b_vec, lam):
    """Solve ``(A + diag(lam)) v = b`` (A symmetric positive semi-definite, lam scalar or vector)."""
    import scipy.linalg

    lhs = a_mat + np.diag(np.broadcast_to(lam, (len(a_mat),)))
    try:
        with warnings.catch_warnings():
            # tiny regularisations are legitimate (noise-free data); accuracy is checked by the
            # training error, not by the condition number
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            return scipy.linalg.solve(lhs, b_vec, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        return np.linalg.lstsq(lhs, b_vec, rcond=None)[0]




def _progress(items, enabled, desc):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="structure")


class PolarizationCalculator(Calculator):
    """ASE calculator face of a :class:`PolarizationModel`.

    Results: ``dipole`` (e*Angstrom, shape (3,)) and ``born_charges`` (also under ASE's name
    ``born_effective_charges``; e, shape (N, 3, 3), ``Z[i, a, b] = dM_a / dx_ib``).
    """

    implemented_properties = ["dipole", "born_charges", "born_effective_charges"]

    def __init__(self, model: PolarizationModel, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def calculate(self, atoms=None, properties=("dipole",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        m, z = self.model.predict(self.atoms)
        self.results = {"dipole": m, "born_charges": z, "born_effective_charges": z}
