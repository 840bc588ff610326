"""Reference engines: energies, forces, dipoles and Born charges by finite electric fields."""
