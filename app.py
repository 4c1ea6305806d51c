"""EDLM Studio: `python app.py` serves the web app on http://127.0.0.1:7860 (the embedded default models)."""
from app.ui import main

if __name__ == "__main__":
    main()
