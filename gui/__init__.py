"""NiceGUI app: explain, explore, export."""
