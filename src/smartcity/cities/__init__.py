"""Bundled city profiles (TOML)."""
