"""Write one benchmark's section of benchmarks/RESULTS.md (between markers), with the machine."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = """# Benchmark results

Each section is rewritten by the script named in it; ratios compare against a baseline measured
in the same process and run, so they travel between machines better than absolute numbers.
"""


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def update_section(name: str, body: str, command: str, machine_info: str | None = None) -> None:
    """Replace (or append) the section `name` of RESULTS.md (machine: this one unless given)."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d")
    section = (f"<!-- {name}:start -->\n## {name}\n\nCommand: `{command}`  \nMachine: {machine_info or machine()}  \n"
               f"Date: {stamp}\n\n{body.strip()}\n<!-- {name}:end -->")
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
