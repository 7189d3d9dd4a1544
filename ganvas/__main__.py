from ganvas.cli import main

raise SystemExit(main())
