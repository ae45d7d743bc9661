"""Streamlit entry point: ``streamlit run app/ui/streamlit_app.py`` (or ``interviewer app``)."""

from app.ui.main import main

main()
