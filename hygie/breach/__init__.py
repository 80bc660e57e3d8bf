"""Breach response: import a leaked file, match it against the identity vault, notify, check anonymously."""
