"""Numbered schema deltas per engine (see storage/migrations.py)."""
