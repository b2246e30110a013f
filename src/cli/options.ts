// The options every command that opens seigo's configuration or database takes, listed in its own --help:
// where the configuration, the data directory and (for servers) the port are. Each one sets the environment
// variable it stands for, so the configuration is still loaded in one place (kernel/config.ts).
import { InvalidArgumentError, type Command } from 'commander';

const ENVIRONMENT = `
Environment: DATABASE_URL (your PostgreSQL instead of the embedded one), SEIGO_CONFIG, SEIGO_DATA_DIR,
SEIGO_PORT, SEIGO_HOST, SEIGO_LOG_LEVEL, SEIGO_LOG_PRETTY=1. Options given here win over them.`;

const port = (v: string): string => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port number from 0 to 65535');
  return v;
};

/** Adds --config and --data-dir (and --port with `withPort`) to `cmd`, and the environment it reads to its help. */
export function runtimeOptions(cmd: Command, o: { withPort?: boolean } = {}): Command {
  cmd.option('--config <path>', 'the JSON configuration file (SEIGO_CONFIG; default ./seigo.config.json)')
    .option('--data-dir <dir>', 'the data directory: embedded PostgreSQL, local keys (SEIGO_DATA_DIR; default ./.seigo)');
  if (o.withPort) cmd.option('--port <n>', 'where the HTTP API listens (SEIGO_PORT; default 8787)', port);
  return cmd.addHelpText('after', ENVIRONMENT);
}

/** A preAction hook: the options above, as the environment variables loadConfig reads. */
export function applyRuntimeOptions(_program: Command, action: Command): void {
  const o = action.opts<{ config?: string; dataDir?: string; port?: string }>();
  if (o.config !== undefined) process.env.SEIGO_CONFIG = o.config;
  if (o.dataDir !== undefined) process.env.SEIGO_DATA_DIR = o.dataDir;
  if (o.port !== undefined) process.env.SEIGO_PORT = o.port;
}
