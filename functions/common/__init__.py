"""The bottom layer: clock, settings, logging, domain errors and vocabulary, histograms.

Imports nothing else of this project. Every other package may import it.
"""
