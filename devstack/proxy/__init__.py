"""The EB-mimic proxy: its configuration rendered from templates, checked, swapped; and its lint."""
