"""``smollab demo``: the whole SmolLM2 loop on bundled data, in minutes on a 2-core CPU.

curate → tokenize → pretrain → SFT → DPO → eval, each step the library function its verb calls
(``smollab curate``, ``tokenize``, ``train``, ``sft``, ``dpo``, ``eval``), run in this process on the
bundled recipes below with dotted overrides: the output paths that chain the steps, and with
``--quick`` the tiny limits that make the same path a test. ``steps.py`` runs an ordered list of
steps with resume, timing and failure records (``OUT/demo.json``); ``loop.py`` defines the steps;
``summary.py`` prints what they did and how the same recipes scale up.

The recipes ship inside the package (``smollab/assets/recipes``; ``recipes/`` links to them), so the
demo runs from an installed wheel, and each exists once: the demo adds overrides, never copies.
"""

from smollab.paths import ASSETS

RECIPES = ASSETS / "recipes"
DEMO_RECIPE = RECIPES / "demo.yaml"
"""The pretraining recipe (its `web` source is the raw C4 sample unless the demo points it at the curated set)."""
CURATE_RECIPE = RECIPES / "curate-demo.yaml"
SFT_RECIPE = RECIPES / "demo-sft.yaml"
DPO_RECIPE = RECIPES / "demo-dpo.yaml"
