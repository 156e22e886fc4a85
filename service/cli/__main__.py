"""`python -m service.cli`: the same command as `understudy`."""

from service.cli import main

main()
