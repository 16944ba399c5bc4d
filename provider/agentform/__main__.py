from agentform.cli import main

main()
