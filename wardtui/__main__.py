"""``python -m wardtui`` runs the same CLI as the ``wardtui`` command."""

from wardtui.cli import main

raise SystemExit(main())
