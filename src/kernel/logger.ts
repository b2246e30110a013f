// pino JSON logs, levels as names ("level":"info"); SEIGO_LOG_PRETTY=1 prints them for humans instead
// (pino-pretty). Secrets, tokens, signatures and card numbers are redacted before they reach a line.
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const REDACT_PATHS = [
  'secret', 'secrets', 'token', 'password', 'authorization',
  '*.secret', '*.secrets', '*.token', '*.password', '*.authorization', '*.apiKey', '*.api_key',
  'headers.authorization', 'headers["webhook-signature"]', 'headers["stripe-signature"]',
  'headers["x-komoju-signature"]', 'headers.cookie',
  'req.headers.authorization', 'req.headers["webhook-signature"]', 'req.headers["stripe-signature"]',
  'req.headers["x-komoju-signature"]', 'req.headers.cookie',
  '*.card_number', '*.cardNumber', '*.pan', '*.cvc',
];

export interface LoggerOptions {
  /** Human-readable lines (pino-pretty) instead of JSON; default: SEIGO_LOG_PRETTY=1. */
  pretty?: boolean;
  destination?: NodeJS.WritableStream;
}

export function createLogger(level = 'info', opts: LoggerOptions | NodeJS.WritableStream = {}): Logger {
  const o: LoggerOptions = 'write' in opts ? { destination: opts } : opts;
  const humans = o.pretty ?? process.env.SEIGO_LOG_PRETTY === '1';
  const options = {
    level,
    base: { service: 'seigo' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (humans) {
    // Synchronous, so a line written just before process.exit() is not lost; pino-pretty names the levels itself.
    const colorize = o.destination === undefined && process.stdout.isTTY;
    return pino(options, pretty({
      sync: true, colorize, ignore: 'pid,hostname,service', translateTime: 'SYS:HH:MM:ss.l',
      ...(o.destination ? { destination: o.destination } : {}),
    }));
  }
  // Levels as names: a reader (or a log shipper) need not know that 30 means info.
  return pino({ ...options, formatters: { level: (label) => ({ level: label }) } }, o.destination as DestinationStream | undefined);
}

/** A logger that writes nothing, for tests and benchmarks. */
export const silentLogger: Logger = pino({ level: 'silent' });
