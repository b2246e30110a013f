// `${NAME}` inside a string of the configuration file is replaced by the environment variable NAME, so that
// secrets (API keys, webhook secrets, tokens) need not be written into the file. `$${` stands for a literal `${`.
import { ConfigError } from './errors.ts';

const REFERENCE = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * The file's contents with every `${NAME}` in a string value replaced by `env[NAME]`. A reference to a
 * variable that is not set throws a ConfigError naming each key that holds one.
 */
export function expandEnvReferences(value: unknown, env: NodeJS.ProcessEnv, source: string): unknown {
  const missing: string[] = [];
  const walk = (v: unknown, path: string): unknown => {
    if (typeof v === 'string') {
      return v.replace(REFERENCE, (whole, escaped: string, name: string) => {
        if (escaped) return whole.slice(1);
        const found = env[name];
        if (found === undefined) {
          missing.push(`  ${path || '(root)'}: refers to \${${name}}, which is not set in the environment`);
          return whole;
        }
        return found;
      });
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, path ? `${path}.${i}` : String(i)));
    if (typeof v === 'object' && v !== null) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, path ? `${path}.${k}` : k)]));
    }
    return v;
  };
  const out = walk(value, '');
  if (missing.length) throw new ConfigError(`invalid configuration in ${source}:\n${missing.join('\n')}`);
  return out;
}
