#!/bin/sh
# Makes model.npz (and, for the LAMMPS route, ff/forcefield.lammps) for this directory:
# Langevin MD of the dimer with tblite GFN2-xTB on a 10 -> 320 K heating ramp (H mass 8 u,
# as in Schmiedmayer & Kresse), GFN2-xTB Born charges of every 20th frame, a Z*-only
# polarization model, and a POD force field from the same labels. About 2 minutes on 2 cores.
set -e
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ipi-dipole sample water-dimer -o dimer-md.extxyz --steps 10000 --mass H=8 --timestep-fs 1.5 \
    --t-start 10 --t-end 320 --every 20 --seed 1 --overwrite --no-progress
ipi-dipole label dimer-md.extxyz -o dimer-labelled.extxyz --engine tblite --no-progress
ipi-dipole train dimer-labelled.extxyz -o model.npz --targets bec --quiet
ipi-dipole train-forcefield dimer-labelled.extxyz -o ff --check-runs 0
