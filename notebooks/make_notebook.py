"""Regenerate the notebooks from the cells below (keeps them reviewable): python notebooks/make_notebook.py"""

from __future__ import annotations

from pathlib import Path

import nbformat

DETECTOR1 = [
    (
        "markdown",
        "# Detector1 on a lazy, tiled exposure\n\n"
        "Writes a small synthetic **test pattern** (not a physical simulation: the simulator is a later "
        "milestone), opens it lazily, builds the Detector1 graph, looks at it, then computes the rate "
        "image. Reference files come from webbflow's embedded default set: no network, no CRDS.",
    ),
    (
        "code",
        "import tempfile, pathlib\n"
        "import numpy as np\n"
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "from webbflow.demo import write_test_pattern\n"
        "from webbflow.io.fits_reader import open_exposure\n"
        "from webbflow.graphs.detector1 import Detector1\n"
        "from webbflow.model import split_rate\n"
        "work = pathlib.Path(tempfile.mkdtemp())\n"
        "uncal = write_test_pattern(work / 'demo_nrca1_uncal.fits', detector='NRCA1', ngroups=6,\n"
        "                           subarray=(1, 1, 128, 128), seed=3)\n"
        "ds = open_exposure(uncal, tile=64)\nds",
    ),
    (
        "markdown",
        "Nothing has been computed yet: every variable is a dask array in 64×64 tiles that "
        "hold whole ramps. Building the pipeline only adds tasks to the graph.",
    ),
    (
        "code",
        "calibrated = Detector1()(ds)\n"
        "rate, rateints = split_rate(calibrated)\n"
        "print(len(rate.sci.data.__dask_graph__()), 'tasks;', rate.sci.data.numblocks, 'tiles')\n"
        "print({k: v for k, v in calibrated.attrs['meta']['cal_step'].items()})",
    ),
    (
        "code",
        "image = rate.sci.compute()\n"
        "fig, axes = plt.subplots(1, 2, figsize=(10, 4))\n"
        "axes[0].imshow(ds.sci.isel(integration=0, group=-1), origin='lower', cmap='gray')\n"
        "axes[0].set_title('last group (DN)')\n"
        "vmin, vmax = np.nanpercentile(image, [1, 99.5])\n"
        "axes[1].imshow(image, origin='lower', vmin=vmin, vmax=vmax, cmap='gray')\n"
        "axes[1].set_title('rate (DN/s)')\n"
        "fig.savefig(work / 'rate.png')\n"
        "print('median rate', float(np.nanmedian(image)), 'DN/s')",
    ),
]


SIMULATE = [
    (
        "markdown",
        "# Simulate a NIRCam exposure, then calibrate it\n\n"
        "A synthetic star and galaxy field is written as ordinary Mirage-format catalogs; a "
        "configuration places NIRCam's NRCA1 detector (a 320×320 subarray, to keep this quick) on "
        "it. `simulate` returns a lazy raw exposure: seed image, ramps, noise, cosmic rays, "
        "non-linearity, IPC, bias. Detector1 then turns it into a rate image. Reference files, the "
        "PSF and the distortion are webbflow's own: no network, no Mirage data.",
    ),
    (
        "code",
        "import tempfile, pathlib\n"
        "import numpy as np\n"
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "from webbflow.sim.field import write_field\n"
        "from webbflow.sim.config import config_from_dict\n"
        "from webbflow.graphs.simulate import simulate\n"
        "from webbflow.graphs.detector1 import Detector1\n"
        "from webbflow.model import split_rate\n"
        "work = pathlib.Path(tempfile.mkdtemp())\n"
        "cats = write_field(work, ra=53.1625, dec=-27.7914, width_arcsec=14, n_stars=40, n_galaxies=10,\n"
        "                   bright=17, faint=25, seed=2)\n"
        "config = config_from_dict({\n"
        "    'instrument': 'NIRCAM', 'aperture': 'NRCA1_SUB320', 'filter': 'F200W', 'pupil': 'CLEAR',\n"
        "    'readout': {'readpatt': 'BRIGHT2', 'ngroups': 6},\n"
        "    'pointing': {'ra': 53.1625, 'dec': -27.7914, 'v3pa': 30.0},\n"
        "    'catalogs': {'point': [cats.point], 'galaxy': [cats.galaxy]},\n"
        "    'cosmic_rays': {'environment': 'SUNMIN'}, 'seed': 7,\n"
        "})\n"
        "ds = simulate(config)\nds",
    ),
    (
        "markdown",
        "Nothing is computed yet. `seed` is the noiseless scene in e⁻/s and `segmap` the catalog "
        "index of each pixel's source; `sci` is the raw ramp in DN, built tile by tile.",
    ),
    (
        "code",
        "seed, segmap = ds.seed.compute(), ds.segmap.compute()\n"
        "fig, axes = plt.subplots(1, 2, figsize=(10, 4))\n"
        "axes[0].imshow(np.log10(seed + 1e-2), origin='lower', cmap='magma')\n"
        "axes[0].set_title('seed image, log10 e-/s')\n"
        "axes[1].imshow(segmap, origin='lower', cmap='tab20', interpolation='nearest')\n"
        "axes[1].set_title('segmentation map')\n"
        "fig.savefig(work / 'seed.png')\n"
        "print(int((np.unique(segmap) > 0).sum()), 'sources on the subarray')",
    ),
    (
        "code",
        "y, x = np.unravel_index(int(np.argmax(seed.values)), seed.shape)\n"
        "ramp = ds.sci.isel(integration=0, y=y, x=x).compute()\n"
        "sky = ds.sci.isel(integration=0, y=10, x=10).compute()\n"
        "fig, ax = plt.subplots(figsize=(5, 3.5))\n"
        "ax.plot(ramp.group, ramp, 'o-', label='brightest pixel')\n"
        "ax.plot(sky.group, sky, 's-', label='sky pixel')\n"
        "ax.set_xlabel('group'); ax.set_ylabel('raw DN'); ax.legend()\n"
        "fig.savefig(work / 'ramp.png')",
    ),
    (
        "code",
        "rate, rateints = split_rate(Detector1()(ds[['sci', 'groupdq', 'pixeldq']]))\n"
        "image = rate.sci.compute()\n"
        "gain = 2.0  # e-/DN, about NIRCam SW's\n"
        "fig, ax = plt.subplots(figsize=(5, 4))\n"
        "vmin, vmax = np.nanpercentile(image, [1, 99.5])\n"
        "ax.imshow(image, origin='lower', vmin=vmin, vmax=vmax, cmap='gray')\n"
        "ax.set_title('calibrated rate (DN/s)')\n"
        "fig.savefig(work / 'rate.png')\n"
        "sky_in = float(np.median(seed.values[20:-20, 20:-20]))\n"
        "sky_out = float(np.nanmedian(image.values[20:-20, 20:-20])) * gain\n"
        "print(f'sky: input {sky_in:.3f} e-/s, recovered {sky_out:.3f} e-/s (nominal gain)')",
    ),
]

MIRI = [
    (
        "markdown",
        "# Simulate a MIRI imaging exposure, then calibrate it\n\n"
        "The MIRI imager through F770W on its SUB256 subarray, FASTR1, 3 integrations: a synthetic "
        "star and galaxy field, the telescope's thermal background, and MIRI's detector effects "
        "(reset anomaly, RSCD, EMI, dark per integration, nonlinearity, cosmic-ray showers). "
        "Detector1 runs jwst's MIRI step order; Image2 gives a calibrated image in MJy/sr. "
        "Reference files, PSF and distortion are webbflow's embedded defaults: no network.",
    ),
    (
        "code",
        "import tempfile, pathlib\n"
        "import numpy as np\n"
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "from webbflow.sim.field import write_field\n"
        "from webbflow.sim.config import config_from_dict\n"
        "from webbflow.graphs.simulate import simulate\n"
        "from webbflow.graphs.detector1 import Detector1\n"
        "from webbflow.graphs.image2 import Image2\n"
        "from webbflow.model import split_rate\n"
        "work = pathlib.Path(tempfile.mkdtemp())\n"
        "cats = write_field(work, ra=80.5, dec=-69.5, width_arcsec=40, n_stars=30, n_galaxies=10,\n"
        "                   bright=15, faint=21, seed=4, bands=[('MIRI', 'F770W', '')])\n"
        "config = config_from_dict({\n"
        "    'instrument': 'MIRI', 'detector': 'MIRIMAGE', 'subarray': 'SUB256', 'filter': 'F770W',\n"
        "    'readout': {'readpatt': 'FASTR1', 'ngroups': 30, 'nints': 3},\n"
        "    'pointing': {'ra': 80.5, 'dec': -69.5, 'v3pa': 10.0},\n"
        "    'catalogs': {'point': [cats.point], 'galaxy': [cats.galaxy]},\n"
        "    'background': {'level': 'low'}, 'seed': 7,\n"
        "})\n"
        "ds = simulate(config)\nds",
    ),
    (
        "code",
        "seed = ds.seed.compute()\n"
        "y, x = np.unravel_index(int(np.argmax(seed.values)), seed.shape)\n"
        "sky = ds.sci.isel(y=20, x=20).compute()\n"
        "fig, axes = plt.subplots(1, 2, figsize=(11, 4))\n"
        "axes[0].imshow(np.log10(seed + 1), origin='lower', cmap='magma')\n"
        "axes[0].set_title('seed image, log10 e-/s (sky ~30 e-/s/pix)')\n"
        "for i in sky.integration.values:\n"
        "    axes[1].plot(sky.group, sky.sel(integration=i), '.-', label=f'integration {i}')\n"
        "axes[1].set_xlabel('group'); axes[1].set_ylabel('raw DN'); axes[1].legend()\n"
        "axes[1].set_title('a sky pixel: reset anomaly in the first groups')\n"
        "fig.savefig(work / 'miri_seed.png')",
    ),
    (
        "markdown",
        "Detector1 chooses MIRI's order from `INSTRUME`. The EMI correction is skipped by default "
        "(as in jwst); here it is turned on, with `reset_model` so the fit sees the ramps without "
        "the known reset anomaly.",
    ),
    (
        "code",
        "steps = {'emicorr': {'skip': False, 'reset_model': True}}\n"
        "calibrated = Detector1(steps=steps)(ds[['sci', 'groupdq', 'pixeldq']])\n"
        "print({k: v for k, v in calibrated.attrs['meta']['cal_step'].items()})\n"
        "rate, rateints = split_rate(calibrated)\n"
        "cal = Image2()(rate)\n"
        "image = cal.sci.compute()\n"
        "fig, ax = plt.subplots(figsize=(5, 4))\n"
        "vmin, vmax = np.nanpercentile(image, [1, 99.5])\n"
        "ax.imshow(image, origin='lower', vmin=vmin, vmax=vmax, cmap='gray')\n"
        "ax.set_title('cal (MJy/sr)')\n"
        "fig.savefig(work / 'miri_cal.png')\n"
        "print('median sky', float(np.nanmedian(image)), cal.sci.attrs.get('units', 'MJy/sr'))",
    ),
]

NOTEBOOKS = {
    "detector1_quickstart.ipynb": DETECTOR1,
    "simulate_quickstart.ipynb": SIMULATE,
    "miri_quickstart.ipynb": MIRI,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, text in cells:
        cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        nb.cells.append(cell)
    return nb


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        nbformat.write(build(cells), Path(__file__).with_name(name))
