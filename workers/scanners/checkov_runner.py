"""Runs checkov with Terraform's local modules confined to the scanned tree.

checkov follows a module's ``source`` wherever it points: ``"/abs/path"``, ``"../../elsewhere"`` or
a link out of the tree. It would then read and evaluate files outside the checkout and put their
resources and values into its report. This wrapper replaces checkov's local-path module loader
with one that refuses any source whose real path lies outside ``--confine``; a refused module is
not read at all (not even checked for existence) and is recorded, one JSON line per refusal, in
``--refused``. Remote modules are never downloaded (``--download-external-modules`` stays off).

Runs as a standalone script under checkov's own Python:
``python -I checkov_runner.py --confine DIR --refused FILE -- <checkov arguments>``. It imports
nothing from the service.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def module_path(current_dir: str, source: str) -> str:
    """Where checkov's local-path loader would look for ``source`` called from ``current_dir``
    (its own rule: a source that starts with the calling folder is taken as it is), made real."""
    path = source if source.startswith(current_dir) else os.path.join(current_dir, source)
    return os.path.realpath(os.path.normpath(path))


def confine_local_modules(root: str, refused: str) -> None:
    from checkov.terraform.module_loading.content import ModuleContent
    from checkov.terraform.module_loading.loaders.local_path_loader import LocalPathLoader

    original = LocalPathLoader._load_module

    def confined(self: Any, module_params: Any) -> Any:
        current_dir = str(module_params.current_dir)
        source = str(module_params.module_source)
        if not inside(module_path(current_dir, source), root):
            record = {"dir": os.path.relpath(os.path.realpath(current_dir), root)}
            # Appended line by line: checkov may load modules in worker processes.
            with open(refused, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            return ModuleContent(None)
        return original(self, module_params)

    LocalPathLoader._load_module = confined


def main(argv: list[str]) -> int:
    if "--" not in argv:
        sys.stderr.write("usage: checkov_runner.py --confine DIR --refused FILE -- <checkov arguments>\n")
        return 2
    split = argv.index("--")
    ours, theirs = argv[:split], argv[split + 1:]
    options = dict(zip(ours[::2], ours[1::2], strict=True))
    root = os.path.realpath(options["--confine"])
    refused = os.path.abspath(options["--refused"])
    open(refused, "w").close()
    sys.argv = ["checkov", *theirs]  # checkov also reads sys.argv itself (its config lookup)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=SyntaxWarning)
        confine_local_modules(root, refused)
        from checkov.main import Checkov

        return int(Checkov(argv=list(theirs)).run() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
