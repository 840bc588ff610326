"""Readers of Born effective charges from first-principles codes' own output files."""
