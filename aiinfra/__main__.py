from aiinfra.cli import main

raise SystemExit(main())
