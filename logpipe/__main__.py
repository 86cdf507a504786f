import sys

from logpipe.cli import main

sys.exit(main())
