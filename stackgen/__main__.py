from stackgen.site.cli import main

raise SystemExit(main())
