from ctstatus.cli import main

main()
