"""Data: normalizers, the on-policy history buffer, replay storage and offline datasets."""
