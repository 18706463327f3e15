"""`python -m agentcast.cli`."""

import sys

from agentcast.cli import main

sys.exit(main())
