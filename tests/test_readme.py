import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_python_example():
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_python_examples_run_as_written(code, capsys):
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    if "print(" in code:
        assert capsys.readouterr().out.strip()
