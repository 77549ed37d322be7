from snncc.cli import main

# guarded: worker processes started with "spawn" (local Dask clusters) import this module again
if __name__ == "__main__":
    main()
