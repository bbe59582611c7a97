from smollab.cli import main

if __name__ == "__main__":  # worker processes (datatrove, torchrun) re-import this module
    main()
