"""EDLM Studio web app (Gradio). The `edlm` package does all model work; this package only shows it."""
