"""Infrared spectra from i-PI output: readers, correlation functions, Green-Kubo."""
