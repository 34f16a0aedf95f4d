"""The model layer: the Hub-facing files (`*_f2rvlm.py`, shipped as remote code with every exported
folder), loading/export/conversion (`hub`) and the offline tiny backbones (`tiny`)."""
