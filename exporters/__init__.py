"""Spec -> built model -> deploy form -> artifacts. Importing the package imports no torch."""
