"""`python -m agentcast`."""

import sys

from agentcast.cli import main

sys.exit(main())
