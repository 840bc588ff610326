#!/bin/bash
# Many NVE replicas of the water dimer on one machine with plain mpirun:
# NVT equilibration -> N replicas -> mpirun -> spectrum.
#
#   bash inputs/mpirun/run.sh [RANKS] [REPLICAS] [WORK_DIR]
#
# Needs inputs/water-dimer/model.npz (a PolarizationModel of the dimer, see
# inputs/water-dimer). Kill it at any point (Ctrl-C, kill PID) and run the same
# command again: finished steps are kept, each replica resumes from its checkpoint.
set -euo pipefail

RANKS=${1:-2}          # MPI ranks = replicas running at the same time (one core each)
N=${2:-8}              # replicas
WORK=${3:-replicas-example}
HERE=$(cd "$(dirname "$0")" && pwd)
DIMER=$(cd "$HERE/../water-dimer" && pwd)
export OMP_NUM_THREADS=1   # one core per replica: more threads only oversubscribe

if [ ! -f "$DIMER/model.npz" ]; then
    echo "first train $DIMER/model.npz (see inputs/water-dimer)" >&2
    exit 1
fi
mkdir -p "$WORK/nvt"
cd "$WORK"

# 1. NVT equilibration: 10 ps at 300 K (SVR thermostat), the dipole every step for
#    the correlation time, positions and velocities every 20 steps for the replicas.
if [ ! -f nvt/nvt.pos_0.xyz ]; then
    cat > nvt/nvt.xml <<EOF
<simulation verbosity='low'>
  <output prefix='nvt'>
    <properties stride='20' filename='out'> [ step, time{picosecond}, conserved, temperature{kelvin}, potential ] </properties>
    <trajectory filename='pos' stride='20' format='xyz' cell_units='angstrom'> positions{angstrom} </trajectory>
    <trajectory filename='vel' stride='20' format='xyz'> velocities </trajectory>
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>
  </output>
  <total_steps> 20000 </total_steps>
  <prng><seed> 2024 </seed></prng>
  <ffdirect name='dipole' pbc='false'>
    <pes> custom </pes>
    <pes_path> $HERE/../dipole_pes.py </pes_path>
    <parameters> { model: $DIMER/model.npz, forces: ase:tblite.ase:TBLite:$DIMER/tblite.json, structure: $DIMER/init.xyz, pbc: false, bec: false } </parameters>
  </ffdirect>
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> $DIMER/init.xyz </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces><force forcefield='dipole'/></forces>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'> 0.5 </timestep>
        <thermostat mode='svr'><tau units='femtosecond'> 50 </tau></thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units='kelvin'> 300 </temperature></ensemble>
  </system>
</simulation>
EOF
    (cd nvt && i-pi nvt.xml > nvt.log)
fi

# 2. N replicas, 3 integrated dipole autocorrelation times apart (printed), velocities
#    from the NVT run, 20000 NVE steps of 0.25 fs each (the template's).
if [ ! -f nve/manifest.json ]; then
    ipi-dipole replicas prepare nvt/nvt.pos_0.xyz --n "$N" --template "$DIMER/input-ffdirect.xml" \
        --checkpoint-stride 1000 --seed 1 -o nve
fi

# 3. Run them all. Exit status = replicas not finished (0 = all done).
mpirun -n "$RANKS" ipi-dipole replicas run nve

# 4. The spectrum, averaged over the replicas with error bars.
ipi-dipole spectrum nve -o spectrum.csv --plot spectrum.png
