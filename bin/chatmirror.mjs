#!/usr/bin/env node
// `npx chatmirror …` in a checkout, right after `npm ci`: runs the TypeScript sources through tsx (a dev
// dependency), as `npm start` does, so there is no build step and no stale dist/ to run by mistake. The service
// image runs the compiled dist/service/cli.js directly instead (service/Dockerfile).
import { register } from 'tsx/esm/api';

register();
await import('../service/cli.ts');
