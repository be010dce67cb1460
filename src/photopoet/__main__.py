from photopoet.cli import app

app(prog_name="photopoet")
