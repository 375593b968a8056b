"""Fixture chains: scenario files and the builder that deploys them on anvil and checks the result."""
