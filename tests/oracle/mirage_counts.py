"""Run Mirage's yaml generator on an APT export and print its exposures per instrument (JSON).

Test-time oracle only: it runs in whatever Python has ``mirage`` installed (see
``tests/test_oracle_mirage_plan.py``), offline, and writes its yaml files to a temporary folder.
Usage: ``python mirage_counts.py PROPOSAL.xml PROPOSAL.pointing OUT_DIR``.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys


def main() -> None:
    xml, pointing, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("MIRAGE_DATA", os.path.join(out, "mirage_data"))
    import yaml
    from mirage.yaml import yaml_generator

    gen = yaml_generator.SimInput(
        input_xml=xml,
        pointing_file=pointing,
        catalogs=None,
        reffile_defaults="crds",
        offline=True,
        output_dir=out,
        simdata_output_dir=out,
        datatype="raw",
        dateobs_for_background=False,
    )
    gen.create_inputs()
    counts: collections.Counter[str] = collections.Counter()
    names = []
    for path in sorted(glob.glob(os.path.join(out, "jw*.yaml"))):
        with open(path) as fh:
            doc = yaml.safe_load(fh)
        counts[str(doc["Inst"]["instrument"]).upper()] += 1
        names.append(os.path.basename(path).removesuffix(".yaml"))
    print("MIRAGE-COUNTS " + json.dumps({"counts": dict(counts), "names": names}))


if __name__ == "__main__":
    main()
