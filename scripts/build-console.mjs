// `npm install`'s prepare step: builds the operator console into console/dist so `npm start` serves it
// at /console with no third command. Without the dev dependencies (a production install) it says so and
// leaves the engine to answer /console with how to build it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let vite;
try {
  vite = join(dirname(createRequire(join(root, 'package.json')).resolve('vite/package.json')), 'bin', 'vite.js');
} catch {
  console.log('seigo: vite is not installed (production install?); the console is not built');
  process.exit(0);
}
if (!existsSync(join(root, 'console', 'vite.config.ts'))) process.exit(0);
const r = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn', '--config', join(root, 'console', 'vite.config.ts')], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
