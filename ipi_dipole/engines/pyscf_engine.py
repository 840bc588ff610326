"""Hartree-Fock / Kohn-Sham DFT reference labels from PySCF in a finite electric field.

The uniform field ``E`` enters as the energy ``-M.E`` with ``M`` the total dipole about
the coordinate origin (the convention of :mod:`.finite_field`):

- electrons (charge -1) get ``+E.r`` added to the core Hamiltonian (PySCF's
  ``examples/scf/40-apply_electric_field.py``), dipole integrals about the origin;
- nuclei get ``-sum_A Z_A E.R_A`` added to the nuclear energy;
- the gradient gets the matching terms: the derivative of the ``E.r`` integrals
  with respect to the basis-function centres (``int1e_irp``, added to the gradient's
  core-Hamiltonian derivative) and ``-Z_A E`` per nucleus (added to ``grad_nuc``).

PySCF works in bohr, hartree, e*bohr and hartree/(e*bohr); conversions are made here
with :mod:`ase.units`. DFT forces leave out the grid response (PySCF's default); the grid
is the same in every field, so this error cancels in the finite-field difference.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree

from ..errors import InputError
from .base import CalculationFailed, Engine, EngineResult, charge_and_uhf

#: V/Angstrom -> hartree/(e*bohr), the atomic unit of field (51.42 V/Angstrom)
FIELD_TO_AU = Bohr / Hartree
HF_NAMES = ("hf", "scf")


class PySCFEngine(Engine):
    """Energies, forces, dipoles and finite-field Born charges with PySCF (HF or DFT).

    Parameters
    ----------
    xc : str
        Exchange-correlation functional in PySCF's (libxc) notation, default ``"B3LYP"``;
        ``"HF"`` for Hartree-Fock.
    basis : str
        Basis set name, default ``"def2-SVP"``.
    field_step : float, optional
        Finite-field step in V/Angstrom, default 0.05 (~1e-3 atomic units). Measured on
        B3LYP/def2-SVP water against 0.05: ``Z*`` moves by 5.6e-4 e at 0.002 and 1.0e-4 e
        at 0.01 V/A (SCF noise, ~1/h), by 4e-5 e at 0.1 and 1.2e-4 e at 0.2 V/A (cubic
        response, ~h^2); at 0.05 it matches displaced dipoles to 4e-5 e.
    conv_tol : float
        SCF energy convergence in hartree (default 1e-11; the gradient is converged to
        its square root, which keeps force noise far below ``field_step`` times ``Z*``).
    max_cycle : int
        SCF iteration limit; a structure that does not converge raises CalculationFailed.
    grid_level : int
        PySCF DFT integration grid level (0-9, default 3).
    """

    name = "pyscf"
    default_field_step = 0.05

    def __init__(self, xc: str = "B3LYP", basis: str = "def2-SVP", field_step: float | None = None,
                 conv_tol: float = 1e-11, max_cycle: int = 100, grid_level: int = 3):
        super().__init__(field_step)
        try:
            import pyscf  # noqa: F401
        except ImportError as exc:
            raise InputError("the pyscf engine needs PySCF: pip install 'ipi-dipole[pyscf]'") from exc
        self.xc = str(xc)
        self.basis = str(basis)
        self.conv_tol = float(conv_tol)
        self.max_cycle = int(max_cycle)
        self.grid_level = int(grid_level)
        if not self.is_hf:
            from pyscf.dft import libxc
            try:
                libxc.parse_xc(self.xc)
            except Exception as exc:  # KeyError or ValueError, depending on the name
                raise InputError(f"PySCF does not know the functional {self.xc!r} ({exc})") from None

    @property
    def is_hf(self) -> bool:
        return self.xc.lower() in HF_NAMES

    @property
    def description(self) -> str:
        return f"pyscf {'HF' if self.is_hf else self.xc}/{self.basis}"

    def _molecule(self, atoms: Atoms):
        from pyscf import gto

        charge, uhf = charge_and_uhf(atoms)
        if charge != int(charge):
            raise InputError(f"PySCF needs a whole-number charge, got {charge:g}")
        try:
            return gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
                         unit="Angstrom", basis=self.basis, charge=int(charge), spin=uhf,
                         verbose=0)
        except (KeyError, RuntimeError, ValueError) as exc:
            # a basis that does not exist or does not cover an element
            raise InputError(f"PySCF cannot build {atoms.get_chemical_formula()} in basis "
                             f"{self.basis!r}: {exc}") from None

    def _scf(self, mol):
        from pyscf import dft, scf

        if self.is_hf:
            mf = scf.RHF(mol) if mol.spin == 0 else scf.UHF(mol)
        else:
            mf = dft.RKS(mol) if mol.spin == 0 else dft.UKS(mol)
            mf.xc = self.xc
            mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        mf.verbose = 0
        return mf

    def _evaluate(self, atoms, field=None, guess=None):
        mol = self._molecule(atoms)
        mf = self._scf(mol)
        e_au = np.zeros(3) if field is None else np.asarray(field, dtype=float) * FIELD_TO_AU
        charges = mol.atom_charges()
        coords = mol.atom_coords()  # bohr
        if np.any(e_au):
            with mol.with_common_orig((0.0, 0.0, 0.0)):
                r_ints = mol.intor("int1e_r", comp=3)
                # int1e_irp[a, x, u, v] = (u | r_a d/dx | v)
                irp = mol.intor("int1e_irp", comp=9).reshape(3, 3, mol.nao, mol.nao)
            hcore = mf.get_hcore() + np.einsum("a,aij->ij", e_au, r_ints)
            e_nuc = mol.energy_nuc() - float(np.einsum("i,ia,a->", charges, coords, e_au))
            mf.get_hcore = lambda *args, **kwargs: hcore
            mf.energy_nuc = lambda *args, **kwargs: e_nuc
        key = (atoms.numbers.tobytes(), mol.charge, mol.spin, self.basis)
        dm0 = guess[1] if guess is not None and guess[0] == key else None
        try:
            mf.kernel(dm0=dm0)
        except (np.linalg.LinAlgError, RuntimeError, ValueError) as exc:
            raise CalculationFailed(f"{self.description}: SCF failed: {exc}") from exc
        if not mf.converged:
            raise CalculationFailed(f"{self.description}: SCF not converged in {self.max_cycle} cycles")
        grad = mf.nuc_grad_method()
        grad.verbose = 0
        if np.any(e_au):
            base_hcore, base_nuc = grad.get_hcore, grad.grad_nuc
            # -(d/dx u | E.r | v): the gradient code's sign and index convention (bra differentiated)
            field_hcore = -np.einsum("a,axvu->xuv", e_au, irp)

            def get_hcore(mol=None):
                return base_hcore(mol) + field_hcore

            def grad_nuc(mol=None, atmlst=None):
                g = base_nuc(mol, atmlst) - np.outer(charges, e_au)[slice(None) if atmlst is None else atmlst]
                return g

            grad.get_hcore = get_hcore
            grad.grad_nuc = grad_nuc
        gradient = grad.kernel()
        dipole = mf.dip_moment(mol, mf.make_rdm1(), unit="AU", origin=np.zeros(3), verbose=0)
        energy = float(mf.e_tot) * Hartree
        forces = -np.asarray(gradient, dtype=float) * (Hartree / Bohr)
        dipole = np.asarray(dipole, dtype=float) * Bohr
        if not (np.isfinite(energy) and np.all(np.isfinite(forces)) and np.all(np.isfinite(dipole))):
            raise CalculationFailed(f"{self.description}: non-finite energy, forces or dipole")
        return EngineResult(energy, forces, dipole), (key, mf.make_rdm1())
