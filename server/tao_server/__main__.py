from tao_server.cli import main

main()
