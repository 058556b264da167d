from stackgen.cli import main

raise SystemExit(main())
