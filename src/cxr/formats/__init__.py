"""Submission formats: the challenge files, validated before they are written (files)."""
