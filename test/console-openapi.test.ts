// The console is typed against the engine's own OpenAPI document: the checked-in console/openapi.json
// and the types generated from it must match what the engine serves (`npm run console:openapi` rewrites both).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const run = (args: string[]) => spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });

describe('console/openapi.json', () => {
  it('is the document the engine serves', () => {
    const r = run(['--import', 'tsx', 'scripts/console-openapi.ts', '--check']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
  it('is what console/src/api-types.ts was generated from', () => {
    const bin = join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js');
    const r = run([bin, 'console/openapi.json', '-o', 'console/src/api-types.ts', '--check']);
    expect(r.status, r.stderr).toBe(0);
  });
});
