"""hybridpg."""
