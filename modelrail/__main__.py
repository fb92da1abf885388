from modelrail.cli import main

raise SystemExit(main())
