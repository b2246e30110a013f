// pino JSON logs. Secrets, tokens, signatures and card numbers are redacted before they reach a line.
import { pino, type DestinationStream, type Logger } from 'pino';

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

export function createLogger(level = 'info', destination?: NodeJS.WritableStream): Logger {
  return pino({
    level,
    base: { service: 'seigo' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, destination as DestinationStream | undefined);
}

/** A logger that writes nothing, for tests and benchmarks. */
export const silentLogger: Logger = pino({ level: 'silent' });
