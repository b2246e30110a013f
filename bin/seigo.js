#!/usr/bin/env node
// The `seigo` command. It runs the compiled JavaScript in dist/ (built by `npm install` or `npm run
// build`). In a clone whose src/ changed after the last build it runs the sources through tsx instead,
// so an edit is never silently ignored; the published package has no src/ and always runs dist/.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stamp = join(root, 'dist', '.built');
const src = join(root, 'src');

function changedSince(dir, since) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() ? changedSince(p, since) : statSync(p).mtimeMs > since) return true;
  }
  return false;
}

const built = existsSync(stamp) && existsSync(join(root, 'dist', 'cli', 'main.js'));
if (built && !(existsSync(src) && changedSince(src, statSync(stamp).mtimeMs))) {
  await import('../dist/cli/main.js');
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write('seigo: dist/ is missing or older than src/, and tsx is not installed: run `npm install` (or `npm run build`)\n');
    process.exit(1);
  }
  if (built && process.stderr.isTTY) process.stderr.write('seigo: src/ changed since the last build; running the sources (npm run build to refresh dist/)\n');
  register();
  await import('../src/cli/main.ts');
}
