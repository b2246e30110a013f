// A source the run cannot read (a malformed file or mapping, an unknown provider): a 400 to API
// callers, a clear message to the CLI; the run changes nothing.
import { BadRequestError } from '../kernel/errors.ts';

export class ReconcileInputError extends BadRequestError {
  constructor(code: 'invalid_csv' | 'invalid_mapping' | 'invalid_transfer_notice' | 'unknown_provider' | 'no_history' | 'invalid_window', message: string) {
    super(code, message);
    this.name = 'ReconcileInputError';
  }
}
