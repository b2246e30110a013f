// A master source seigo cannot read (a malformed CSV or mapping, an unknown column, a partner
// without a source): a 400 to API callers, a clear message to the CLI; nothing changes.
import { BadRequestError } from '../kernel/errors.ts';

export class MasterdataInputError extends BadRequestError {
  constructor(code: 'invalid_csv' | 'invalid_mapping' | 'no_master_source' | 'invalid_source', message: string) {
    super(code, message);
    this.name = 'MasterdataInputError';
  }
}
