"""Helpers shared by the emulator tests, the demo and the benchmarks."""
