// Plays the bank for bank-transfer deposits: customers send transfers into virtual accounts, and the
// bank hands over Zengin transfer-notice files (振込入金通知) listing them. Now and then it withdraws a
// transfer it reported (an erroneous credit): a 取消 record in a later file, with the transfer's
// 照会番号, day, amount and payer; or a cancellation of a transfer it never reported at all. It
// keeps its own record of every transfer and cancellation, with the external ids seigo will know
// them by, so an end-to-end check can ask "did every yen the bank reported (and did not take back)
// land somewhere once, and was every withdrawal reversed once?" from the bank's side.
import { formatTransferNotice, parseTransferNotice, type TransferNoticeInput } from '../providers/zengin/index.ts';

export interface BankTransferSent {
  /** The id seigo's import gives the transfer (stable for the same data). */
  externalId: string;
  accountNumber: string;
  amount: bigint;
  /** 振込依頼人名, half-width kana. */
  payerName: string;
}

export interface BankCancellationSent {
  /** The id seigo's import gives the cancellation record. */
  externalId: string;
  /** The external id of the transfer it withdraws; null for one the bank never reported. */
  cancels: string | null;
  accountNumber: string;
  amount: bigint;
}

const BANK = { bankCode: '0001', bankName: 'ｾｲｺﾞｷﾞﾝｺｳ', branchCode: '001', branchName: 'ﾎﾝﾃﾝ' } as const;

interface Record_ { accountNumber: string; input: TransferNoticeInput }

export class BankSimulator {
  /** Every transfer reported in a file so far. */
  readonly reported: BankTransferSent[] = [];
  /** Every cancellation (取消) reported in a file so far. */
  readonly cancellations: BankCancellationSent[] = [];
  private waiting: Record_[] = [];
  /** Everything reported so far, as it was reported, for the statement. */
  private readonly sent: Record_[] = [];
  /** Reported transfers by external id, for cancelling one. */
  private readonly byExternalId = new Map<string, Record_>();
  private readonly cancelled = new Set<string>();
  private inquiry = 0;

  constructor(private readonly opts: { now?: () => Date } = {}) {}

  /** A customer sends money; it appears in the next file. */
  transfer(t: { accountNumber: string; amount: bigint; payerName: string }): void {
    const day = (this.opts.now?.() ?? new Date()).toISOString().slice(0, 10);
    this.waiting.push({
      accountNumber: t.accountNumber,
      input: {
        inquiryNumber: this.nextInquiry(), transactionDate: day, valueDate: day, amount: t.amount,
        otherBankChequeAmount: 0n, payerCode: null, payerName: t.payerName, remittingBankName: 'ﾐｽﾞﾎ', remittingBranchName: 'ﾎﾝﾃﾝ',
        cancelled: false, ediInfo: '',
      },
    });
  }

  /**
   * The bank withdraws a transfer it reported (`externalId`): a 取消 record repeating its 照会番号,
   * 勘定日, amount and payer appears in the next file. False if there is no such transfer or it is
   * already withdrawn.
   */
  cancel(externalId: string): boolean {
    const t = this.byExternalId.get(externalId);
    if (!t || this.cancelled.has(externalId)) return false;
    this.cancelled.add(externalId);
    this.waiting.push({ accountNumber: t.accountNumber, input: { ...t.input, cancelled: true } });
    return true;
  }

  /** The bank withdraws a transfer it never reported (its own error): a 取消 record with a fresh 照会番号. */
  cancelUnknown(t: { accountNumber: string; amount: bigint; payerName: string }): void {
    this.transfer(t);
    this.waiting.at(-1)!.input.cancelled = true;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** The next transfer-notice file (one group per credited account), or undefined when nothing waits. */
  takeFile(): Buffer | undefined {
    if (this.waiting.length === 0) return undefined;
    const taken = this.waiting;
    const file = this.format(taken);
    this.sent.push(...taken);
    this.waiting = [];
    // The bank's record is what the file says, read back the way seigo reads it.
    const parsed = parseTransferNotice(file);
    if (!parsed.ok) throw new Error(`bank simulator wrote a file it cannot read: line ${parsed.error.line}, ${parsed.error.field}: ${parsed.error.message}`);
    const record = (accountNumber: string, inquiry: string | null, cancelled: boolean) =>
      taken.find((w) => Number(w.accountNumber) === Number(accountNumber) && w.input.inquiryNumber === inquiry && w.input.cancelled === cancelled)!;
    for (const t of parsed.value.transfers) {
      const r = record(t.account.accountNumber, t.inquiryNumber, t.cancelled);
      if (!t.cancelled) {
        this.reported.push({ externalId: t.externalId, accountNumber: t.account.accountNumber, amount: t.amount, payerName: t.payerName });
        this.byExternalId.set(t.externalId, r);
        continue;
      }
      const named = t.externalId.slice(0, -':cancel'.length);
      this.cancellations.push({ externalId: t.externalId, cancels: this.byExternalId.has(named) ? named : null, accountNumber: t.account.accountNumber, amount: t.amount });
    }
    return file;
  }

  /** Every transfer and cancellation reported so far in one file: the bank's statement, for reconciliation. */
  statement(): Buffer | undefined {
    return this.sent.length === 0 ? undefined : this.format(this.sent);
  }

  private nextInquiry(): string {
    return String(++this.inquiry % 1_000_000).padStart(6, '0');
  }

  private format(transfers: readonly Record_[]): Buffer {
    const byAccount = new Map<string, TransferNoticeInput[]>();
    for (const w of transfers) byAccount.set(w.accountNumber, [...(byAccount.get(w.accountNumber) ?? []), w.input]);
    const day = (this.opts.now?.() ?? new Date()).toISOString().slice(0, 10);
    return formatTransferNotice({
      groups: [...byAccount].map(([accountNumber, transfers]) => ({
        header: {
          createdOn: day, accountingFrom: day, accountingTo: day, ...BANK, depositType: '1' as const, accountNumber, accountName: 'ｾｲｺﾞ',
        },
        transfers,
      })),
    });
  }
}
