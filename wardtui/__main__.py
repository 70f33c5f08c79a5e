"""``python -m wardtui`` runs the same CLI as the ``wardtui`` command."""

from wardtui.start import main

raise SystemExit(main())
