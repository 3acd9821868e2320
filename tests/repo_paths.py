"""Where things are, for tests at any depth of tests/: the repository, tests/ and its fixtures."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
