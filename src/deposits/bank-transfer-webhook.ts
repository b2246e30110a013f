// Incoming transfers announced by the bank partner's webhooks (a `standard-webhooks` provider named
// by `deposits.bankTransferProvider`): the same transfers as the Zengin transfer-notice file, told
// as they happen. They come through the normal intake (stored in the inbox before they are
// acknowledged) and each is booked here, in the inbox worker's transaction, by importTransfer /
// importCancellation with the file import's policy: one piece books both paths.
//
// One transfer, one effect, whichever path tells it first: when the webhook's `id` is the
// transfer's 照会番号 and it names the credited bank and branch, its external id is the one the
// file gives the same record (bank-branch-type-account, 勘定日, 照会番号; see externalIdFor in
// providers/zengin/transfer-notice.ts), so the later file finds it booked. Any other `id` is kept
// as `<provider>:<id>`: unique, but it cannot agree with a file record (documented in README).
//
// The credited account is bank_code, branch_code, deposit_type (預金種目, 1 unless said: what every
// virtual account is) and account_number, matched all four as a file record's (importTransfer). The
// first two stay optional, as they always were, so an older partner's payload is still accepted and
// booked; but without them the account is nobody's and the transfer goes to suspense
// (unknown_account): a bare number is not ours, since every bank has an account 1234567 (docs/design.md).
//
// A payload that does not fit is a PermanentFailure: the inbox row is kept, failed, with the cause,
// for an operator to read and replay; nothing is booked.
import { z } from 'zod';
import { PermanentFailure } from '../kernel/work.ts';
import type { EventHandler, EventHandlers } from '../intake/handlers.ts';
import { zodIssues } from '../providers/shared.ts';
import { importCancellation, importTransfer, type BankTransferPolicy, type IncomingTransfer } from './bank-transfer.ts';

export const BANK_TRANSFER_EVENTS = ['bank_transfer.received', 'bank_transfer.cancelled'] as const;

const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be YYYY-MM-DD')
  .refine((s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s), 'is not a calendar date');
const transferId = z.union([z.string().min(1).max(200), z.number().int().nonnegative()]).transform(String);

const dataSchema = z.object({
  id: transferId,
  account_number: z.string().regex(/^\d{7}$/, 'must be 7 digits'),
  amount: z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.string().regex(/^\d{1,18}$/)])
    .transform((a) => BigInt(a)),
  currency: z.literal('JPY').default('JPY'),
  payer_name: z.string().trim().min(1).max(200),
  transaction_date: isoDate,
  bank_code: z.string().regex(/^\d{4}$/, 'must be 4 digits').optional(),
  branch_code: z.string().regex(/^\d{3}$/, 'must be 3 digits').optional(),
  /** 預金種目 of the credited account, as in the file's header; 1 (普通) unless said. */
  deposit_type: z.enum(['1', '2', '4', '9']).default('1'),
  cancels: transferId.optional(),
});
type TransferData = z.infer<typeof dataSchema>;

/** The external id the transfer `id` (of a record for d's account and day) gets; see the header comment. */
export function webhookExternalId(provider: string, d: TransferData, id: string): string {
  if (/^\d{1,6}$/.test(id) && /[1-9]/.test(id) && d.bank_code !== undefined && d.branch_code !== undefined) {
    return `zengin:${d.bank_code}-${d.branch_code}-${d.deposit_type}-${d.account_number}:${d.transaction_date}:${id.padStart(6, '0')}`;
  }
  return `${provider}:${id}`;
}

export interface BankTransferWebhookOptions {
  /** The provider (its name in the config) whose events carry bank transfers. */
  provider: string;
  /** The file import's policy (limit, name-mismatch), so both paths book alike. */
  policy: BankTransferPolicy;
}

export function registerBankTransferWebhooks(handlers: EventHandlers, opts: BankTransferWebhookOptions): void {
  const onEvent: EventHandler = async (ctx, event, meta) => {
    if (meta.provider !== opts.provider) return;
    const parsed = dataSchema.safeParse(event.data);
    if (!parsed.success) throw new PermanentFailure(`malformed ${event.type} data: ${zodIssues(parsed.error)}`);
    const d = parsed.data;
    const cancelling = event.type === 'bank_transfer.cancelled';
    if (cancelling !== (d.cancels !== undefined)) {
      throw new PermanentFailure(`malformed ${event.type} data: cancels is ${cancelling ? 'required on' : 'only for'} bank_transfer.cancelled`);
    }
    const incoming: IncomingTransfer = {
      externalId: webhookExternalId(opts.provider, d, d.id),
      account: { accountNumber: d.account_number, bankCode: d.bank_code, branchCode: d.branch_code, depositType: d.deposit_type },
      amount: d.amount, payerName: d.payer_name, transactionDate: d.transaction_date,
    };
    const policy = { ...opts.policy, log: ctx.log };
    if (d.bank_code === undefined || d.branch_code === undefined) {
      ctx.log.warn({ transfer: d.id }, `${event.type} without bank_code and branch_code: booked to suspense (unknown_account)`);
    }
    if (d.cancels === undefined) {
      await importTransfer(ctx.tx, incoming, policy);
    } else {
      // As in the file: a cancellation's own id is its record's id with ':cancel'.
      await importCancellation(ctx.tx, { ...incoming, externalId: `${incoming.externalId}:cancel`, cancels: webhookExternalId(opts.provider, d, d.cancels) }, policy);
    }
  };
  for (const type of BANK_TRANSFER_EVENTS) handlers.on(type, onEvent);
}
