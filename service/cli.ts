#!/usr/bin/env node
/**
 * The `chatmirror` entry point: `node service/cli.js` in the image, `tsx service/cli.ts` (npm start), or
 * bin/chatmirror.mjs (`npx chatmirror`). The commands live in cli-run.ts.
 */
import { runCli } from './cli-run.js';

process.exitCode = await runCli(process.argv.slice(2));
