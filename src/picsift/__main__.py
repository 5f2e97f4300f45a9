from picsift.cli import main

main()
