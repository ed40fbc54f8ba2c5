"""Small shared helpers: seeding, devices, atomic file writes, checksums."""
