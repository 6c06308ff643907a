"""`sitn-tf experiment`: model variants over seeds, and their report and figures."""
