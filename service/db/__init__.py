"""Persistence: SQLAlchemy 2 tables, an engine built from settings, keyword-only data functions."""
