"""What a module says about itself to admins and users: its homepage and
the Usage part of `module help` (the stack it belongs to, what the module
gives and how to use it, then its Jupyter extensions). Pure; the text is in
templates/."""

from __future__ import annotations

from stackgen.common.templating import environment
from stackgen.site.spec import Stack

PYPI_PROJECT = "https://pypi.org/project/{}/"


def homepage(stack: Stack, name: str, packages: set[str]) -> str:
    """The module's own homepage from stack.yaml; else the PyPI page of the
    package the module is named after; else the stack's homepage."""
    own = next((m.homepage for m in stack.modules if m.name == name), "")
    if own:
        return own
    if name in packages:
        return PYPI_PROJECT.format(name)
    return stack.homepage


def usage(stack: Stack, module: str, *, lab: bool, common: bool, loads: list[str],
          loaded_by: list[str], imports: list[str], extensions: list[str]) -> str:
    """The Usage section of `module help` for `module` (name/version)."""
    kernels = [{"name": k.name, "display_name": k.display_name} for k in stack.kernels] if lab else []
    return environment().get_template("module_usage.txt.j2").render(
        module=module, lab=lab, common=common, stack=stack.name, stack_version=stack.version,
        stack_description=stack.description, base=stack.base.module,
        loads=loads, loaded_by=loaded_by, imports=imports, kernels=kernels,
        extensions=extensions).strip()
