#!/usr/bin/env node
// The `keywarden` binary (package.json "bin"): everything else is in src/cli/.
import { run } from "./cli/program.js";

await run(process.argv);
