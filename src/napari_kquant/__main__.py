"""``python -m napari_kquant``: the ``kquant`` command."""

from ._cli import main

raise SystemExit(main())
