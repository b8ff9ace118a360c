"""nlmmap.impl: the production implementation over real shared memory (depends on nlmmap.spec only)."""
