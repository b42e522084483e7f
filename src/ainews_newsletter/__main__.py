from ainews_newsletter.cli import main

main()
