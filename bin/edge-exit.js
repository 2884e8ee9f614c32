#!/usr/bin/env node
// The gateway runs the TypeScript sources directly through tsx's loader, so a
// checkout is runnable right after `npm ci` with no separate build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
