"""Verifiable tasks for the sequence policy: prompts from a seed, a programmatic reward."""
