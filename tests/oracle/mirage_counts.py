"""Run Mirage's yaml generator on an APT export and print its exposures per instrument (JSON).

Test-time oracle only: it runs in whatever Python has ``mirage`` installed (see
``tests/test_oracle_mirage_plan.py``), offline, and writes its yaml files to a temporary folder.
Usage: ``python mirage_counts.py PROPOSAL.xml PROPOSAL.pointing OUT_DIR``.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import sys
from pathlib import Path


def main() -> None:
    xml, pointing, out = (Path(a) for a in sys.argv[1:4])
    # Mirage writes its logs beside the APT files: give it copies in the output folder
    inputs = out / "apt"
    inputs.mkdir(parents=True, exist_ok=True)
    xml = Path(shutil.copy(xml, inputs))
    pointing = Path(shutil.copy(pointing, inputs))
    os.environ.setdefault("MIRAGE_DATA", str(out / "mirage_data"))
    import yaml
    from mirage.yaml import yaml_generator

    gen = yaml_generator.SimInput(
        input_xml=str(xml),
        pointing_file=str(pointing),
        catalogs=None,
        reffile_defaults="crds",
        offline=True,
        output_dir=str(out),
        simdata_output_dir=str(out),
        datatype="raw",
        dateobs_for_background=False,
    )
    gen.create_inputs()
    counts: collections.Counter[str] = collections.Counter()
    names = []
    for path in sorted(out.glob("jw*.yaml")):
        doc = yaml.safe_load(path.read_text())
        counts[str(doc["Inst"]["instrument"]).upper()] += 1
        names.append(path.name.removesuffix(".yaml"))
    print("MIRAGE-COUNTS " + json.dumps({"counts": dict(counts), "names": names}))


if __name__ == "__main__":
    main()
