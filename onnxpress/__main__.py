from onnxpress.cli import main

raise SystemExit(main())
