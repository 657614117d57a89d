"""``python -m napari_kquant``: the ``kquant`` command."""

from .cli._main import main

raise SystemExit(main())
