"""The test suite. `unit/` needs no server (`make test-unit`, about a minute); `integration/` talks to the real loopback
servers (MariaDB, Redis, tansu, the Hive Thrift Server) or starts its own. Both mirror the package: `core/`,
`defs/` (the Dagster layer), and `system/` for whole processes (CLI, demo, deployments, outages, chaos)."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the repository's root (conf/, deploy/, vagrant/, ...)
