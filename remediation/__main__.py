from remediation.entrypoints.cli import main

raise SystemExit(main())
