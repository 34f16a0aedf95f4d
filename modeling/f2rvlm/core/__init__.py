"""The protocol core: dialogues, the prompt/answer protocol and the paper's metrics (plain Python).

Everything else in the package builds on these three modules; they import nothing from it.
"""
