"""Fixture chains: scenario files, and the builder that deploys and checks them on anvil."""
