// seigo's version, read from package.json: the one place it is written. The same relative path
// holds from src/kernel (run from source) and dist/kernel (the built package).
import { createRequire } from 'node:module';

export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
