"""`python -m model_api` is `python -m model_api.train`: the one command a fresh checkout needs first."""

from model_api.train import main

main()
