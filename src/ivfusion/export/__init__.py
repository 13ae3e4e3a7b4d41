"""Converters from trained models to deployment formats (plain functions, one per conversion)."""
