// Plays the bank for bank-transfer deposits: customers send transfers into virtual accounts, and the
// bank hands over Zengin transfer-notice files (振込入金通知) listing them. It keeps its own record
// of every transfer it reported, with the external id seigo will know it by, so an end-to-end check
// can ask "did every yen the bank reported land somewhere?" from the bank's side.
import { formatTransferNotice, parseTransferNotice, type TransferNoticeInput } from '../providers/zengin/index.ts';

export interface BankTransferSent {
  /** The id seigo's import gives the transfer (stable for the same data). */
  externalId: string;
  accountNumber: string;
  amount: bigint;
  /** 振込依頼人名, half-width kana. */
  payerName: string;
}

const BANK = { bankCode: '0001', bankName: 'ｾｲｺﾞｷﾞﾝｺｳ', branchCode: '001', branchName: 'ﾎﾝﾃﾝ' } as const;

export class BankSimulator {
  /** Every transfer reported in a file so far. */
  readonly reported: BankTransferSent[] = [];
  private waiting: { accountNumber: string; input: TransferNoticeInput }[] = [];
  /** Everything reported so far, as it was reported, for the statement. */
  private readonly sent: { accountNumber: string; input: TransferNoticeInput }[] = [];
  private inquiry = 0;

  constructor(private readonly opts: { now?: () => Date } = {}) {}

  /** A customer sends money; it appears in the next file. */
  transfer(t: { accountNumber: string; amount: bigint; payerName: string }): void {
    const day = (this.opts.now?.() ?? new Date()).toISOString().slice(0, 10);
    this.waiting.push({
      accountNumber: t.accountNumber,
      input: {
        inquiryNumber: String(++this.inquiry % 1_000_000).padStart(6, '0'), transactionDate: day, valueDate: day, amount: t.amount,
        otherBankChequeAmount: 0n, payerCode: null, payerName: t.payerName, remittingBankName: 'ﾐｽﾞﾎ', remittingBranchName: 'ﾎﾝﾃﾝ',
        cancelled: false, ediInfo: '',
      },
    });
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** The next transfer-notice file (one group per credited account), or undefined when nothing waits. */
  takeFile(): Buffer | undefined {
    if (this.waiting.length === 0) return undefined;
    const file = this.format(this.waiting);
    this.sent.push(...this.waiting);
    this.waiting = [];
    // The bank's record is what the file says, read back the way seigo reads it.
    const parsed = parseTransferNotice(file);
    if (!parsed.ok) throw new Error(`bank simulator wrote a file it cannot read: line ${parsed.error.line}, ${parsed.error.field}: ${parsed.error.message}`);
    for (const t of parsed.value.transfers) {
      this.reported.push({ externalId: t.externalId, accountNumber: t.account.accountNumber, amount: t.amount, payerName: t.payerName });
    }
    return file;
  }

  /** Every transfer reported so far in one file: the bank's statement, for reconciliation. */
  statement(): Buffer | undefined {
    return this.sent.length === 0 ? undefined : this.format(this.sent);
  }

  private format(transfers: readonly { accountNumber: string; input: TransferNoticeInput }[]): Buffer {
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
