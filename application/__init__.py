"""The application layer: the `solargen` command hub, the quickstart, the studio and its Gradio app.

Everything below (data, diffusion, eval, forecasting, ablation) is a library; nothing there
imports this package.
"""
