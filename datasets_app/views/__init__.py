"""Views of the error notebook, one module per page family; datasets_app/urls.py wires them."""
