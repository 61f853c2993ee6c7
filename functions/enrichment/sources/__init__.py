"""The external sources: ``github``, ``linkedin``, ``website``, ``web``."""
