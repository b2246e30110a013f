// The console and the TypeScript client (clients/typescript) are typed against the engine's own OpenAPI
// document: the checked-in console/openapi.json and the client's types generated from it must match what the
// engine serves (`npm run console:openapi` rewrites both), and the document must pass `redocly lint`.
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
  it('is what clients/typescript/src/schema.ts was generated from', () => {
    const bin = join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js');
    const r = run([bin, 'console/openapi.json', '-o', 'clients/typescript/src/schema.ts', '--check']);
    expect(r.status, r.stderr).toBe(0);
  });
});
