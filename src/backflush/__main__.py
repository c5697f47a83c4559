from backflush.cli import main

main()
