from snncc.cli import main

main()
