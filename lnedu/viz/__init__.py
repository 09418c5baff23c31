"""Plots and ipywidgets explorers used by the notebooks, one module per notebook topic.

* :mod:`lnedu.viz.common` - the notebook index (:func:`notebook_index`) and pyplot-free figures;
* :mod:`lnedu.viz.layernorm` - notebook 01: BN vs LN axes, the layer-norm row explorer;
* :mod:`lnedu.viz.geometry` - notebook 03: the Fisher geometry plots;
* :mod:`lnedu.viz.experiments` - learning curves of the experiment notebooks;
* :mod:`lnedu.viz.diagrams` - the computational graph of LN, the LN-LSTM cell, rows vs columns (notebooks 01-04);
* :mod:`lnedu.viz.variants` - notebook 15: the LN-RNN variants' diagrams and explorers, the axes explorer;
* :mod:`lnedu.viz.source` - :func:`show_source`, the notebooks' one way of showing library code.

Functions return a matplotlib ``Figure`` or an ipywidgets widget and never display anything; the
computation behind an explorer is a separate pure function that the tests call. matplotlib and
ipywidgets are imported only when a figure or widget is built, so importing this package is cheap.
"""

from .common import NotebookEntry, new_figure, notebook_index
from .diagrams import plot_ln_graph, plot_ln_lstm_cell, plot_rows_vs_columns
from .layernorm import EXPLORER_RANGES, explore_row, layer_norm_explorer, plot_norm_axes, plot_row
from .source import show_source, source_of

__all__ = [
    "NotebookEntry",
    "notebook_index",
    "new_figure",
    "plot_norm_axes",
    "explore_row",
    "plot_row",
    "layer_norm_explorer",
    "EXPLORER_RANGES",
    "plot_ln_graph",
    "plot_ln_lstm_cell",
    "plot_rows_vs_columns",
    "show_source",
    "source_of",
]
