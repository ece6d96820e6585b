"""The README's Python examples run as written, and print what the README says they print."""

import pathlib
import re

import numpy as np

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        namespace = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
        if "cycle_update(" in block:
            # the synapse example's comment states dw / A = [0.906, 0.955]
            np.testing.assert_allclose(
                np.asarray(namespace["dw"]) / [20.0, 50.0], [0.906, 0.955], atol=6e-4
            )
