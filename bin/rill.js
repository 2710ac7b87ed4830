#!/usr/bin/env node
// The `rill` command. The TypeScript is compiled to dist/ by `npm run build` (run by `npm ci`).
import "../dist/clients/cli/src/main.js";
