"""Identity: the NIR, keyed pseudonyms, and the encrypted identity vault."""
