"""Sync: desired objects from git vs the store -> a plan -> applied as a whole."""
