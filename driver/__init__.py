"""i-PI coupling: a PES that serves forces plus the dipole and Born-charge extras."""
