"""Governance: accounts, roles, purpose-bound projects, reviews, minimised project views, opt-outs."""
