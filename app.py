"""The solargen studio (Gradio), launched from a checkout: `python app.py [--model DIR] ...`.

The app itself is application.app (installed with the package; `solargen app` is the
same). This file is the conventional entry point of a Gradio Space.
"""
import sys

from application.app_cli import main

if __name__ == "__main__":
    sys.exit(main())
