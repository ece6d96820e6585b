"""Progress bars: a widget in a notebook with ipywidgets, a plain text bar everywhere else.

``tqdm.auto`` already falls back to the text bar in a notebook without ipywidgets, but warns
(``TqdmWarning: IProgress not found``) although the user did nothing wrong; the fallback is
fine, so the warning is silenced here, once, for every bar of the package.
"""

import warnings

from tqdm import TqdmWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
