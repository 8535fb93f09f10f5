from smartlabel.cli import main

main()
