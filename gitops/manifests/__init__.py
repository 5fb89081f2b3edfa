"""Manifests: load YAML keeping file:line (loader), validate (validate, checks)."""
