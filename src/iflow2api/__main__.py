from iflow2api.cli import main

main()
