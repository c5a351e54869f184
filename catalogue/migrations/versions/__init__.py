"""Catalogue revisions, oldest first."""
