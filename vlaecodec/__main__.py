"""``python -m vlaecodec``: the same command line as the ``vlaecodec`` script."""
from vlaecodec.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="vlaecodec")
