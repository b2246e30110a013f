// Bank-transfer deposits (銀行振込): API clients assign a user's virtual
// account; operators import the bank's Zengin transfer-notice file and list what waits in suspense.
// The import takes the file as JSON `{ file_base64 }` (the bytes as the bank sent them, Shift_JIS),
// as application/octet-stream (the same bytes), or as text/plain (the file converted to UTF-8).
// A malformed file is a 400 problem naming its line and field; nothing of it is imported.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { BadRequestError } from '../kernel/errors.ts';
import {
  assignVirtualAccount, bankTransferMessage, importTransferNoticeFile, listBankTransfers, type BankTransferPolicy, type VirtualAccount,
} from '../deposits/bank-transfer.ts';
import { BANK_ACCOUNT_TYPES } from '../deposits/refunds.ts';
import type { ZenginParseError } from '../providers/zengin/index.ts';
import { listOf, listQuery, pageOf } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

const virtualAccountResponse = z.object({
  account_number: z.string(), bank_code: z.string(), branch_code: z.string(),
  account_type: z.enum(BANK_ACCOUNT_TYPES).describe('ordinary (普通): a transfer is credited only to this bank, branch, type and number'),
  user_id: z.string(), name_kana: z.string(), created_at: z.string(),
});

const virtualAccountMessage = (a: VirtualAccount) => ({
  account_number: a.accountNumber, bank_code: a.bankCode, branch_code: a.branchCode, account_type: a.accountType, user_id: a.userId,
  name_kana: a.registeredNameKana, created_at: a.createdAt.toISOString(),
});

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const importBody = z.union([
  z.object({ file_base64: z.string().min(1).refine((s) => BASE64.test(s.replace(/\s+/g, '')) && s.replace(/\s+/g, '').length % 4 === 0, 'must be base64') }).strict(),
  z.string().min(1),
  z.instanceof(Buffer),
]);

function malformed(e: ZenginParseError): BadRequestError {
  return new BadRequestError('invalid_transfer_notice', `line ${e.line}, ${e.field}: ${e.message}`, {
    line: e.line, field: e.field, ...(e.relatedLine === undefined ? {} : { related_line: e.relatedLine }),
  });
}

export interface BankTransferRoutesOptions {
  policy?: BankTransferPolicy | undefined;
  /** The bank and branch of new virtual accounts; bank-transfer.ts's defaults if not given. */
  bankCode?: string | undefined;
  branchCode?: string | undefined;
}

export async function bankTransferRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry, opts: BankTransferRoutesOptions = {}): Promise<void> {
  const pool = engine.db.pool;
  // The raw file (Shift_JIS bytes) in this plugin's scope only.
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  route(app, registry, {
    method: 'POST', url: '/v1/virtual-accounts', tags: ['deposits'], apiClient: true,
    summary: "The user's virtual account for bank transfers, created on first call; the same account on every later call",
    body: z.object({ user_id: z.string().min(1).max(255), name_kana: z.string().trim().min(1).max(200) }).strict(),
    response: virtualAccountResponse,
  }, async ({ body }) => virtualAccountMessage(await assignVirtualAccount(pool, {
    userId: body.user_id, registeredNameKana: body.name_kana, bankCode: opts.bankCode, branchCode: opts.branchCode,
  })));

  route(app, registry, {
    method: 'POST', url: '/admin/v1/bank-transfers/import', tags: ['deposits'], role: 'operator',
    summary: 'Import a Zengin transfer-notice file: every transfer is booked (credited or suspense) in one transaction, or nothing on a malformed file',
    body: importBody,
    bodyContent: {
      'application/json': { schema: {
        type: 'object', required: ['file_base64'], additionalProperties: false,
        properties: { file_base64: { type: 'string', minLength: 1, contentEncoding: 'base64', description: 'the file\'s bytes as the bank sent them (Shift_JIS)' } },
      } },
      'application/octet-stream': { schema: { type: 'string', format: 'binary', description: 'the file\'s bytes as the bank sent them (Shift_JIS)' } },
      'text/plain': { schema: { type: 'string', minLength: 1, description: 'the file converted to UTF-8' } },
    },
    errors: { 400: ['invalid_transfer_notice'] },
    response: z.object({ credited: z.number(), suspense: z.number(), duplicates: z.number(), cancellations: z.number(), unmatched_cancellations: z.number() }),
  }, async ({ body }) => {
    let bytes: Uint8Array;
    let encoding: 'shift_jis' | 'utf8' = 'shift_jis';
    if (Buffer.isBuffer(body)) bytes = body;
    else if (typeof body === 'string') {
      bytes = Buffer.from(body, 'utf8');
      encoding = 'utf8';
    } else bytes = Buffer.from(body.file_base64.replace(/\s+/g, ''), 'base64');
    const r = await importTransferNoticeFile(pool, bytes, { ...opts.policy, log: engine.log }, { encoding });
    if (!r.ok) throw malformed(r.error);
    const { unmatchedCancellations, ...counts } = r.value;
    return { ...counts, unmatched_cancellations: unmatchedCancellations };
  });

  route(app, registry, {
    method: 'GET', url: '/admin/v1/bank-transfers', tags: ['deposits'], role: 'viewer',
    summary: 'Imported bank transfers, newest first; status=suspense lists what waits for an operator',
    query: z.object({
      status: z.enum(['credited', 'suspense', 'cancelled', 'cancellation', 'unmatched_cancel']).optional(),
      user_id: z.string().min(1).max(255).optional(),
      ...listQuery({ max: 500, default: 50, cursor: z.string().min(1).max(255) }),
    }),
    response: listOf(z.record(z.string(), z.string().nullable())),
  }, async ({ query }) => {
    const list = await listBankTransfers(pool, { status: query.status, userId: query.user_id, limit: query.limit + 1, startingAfter: query.starting_after });
    return pageOf(list, query.limit, (t) => t.externalId, bankTransferMessage);
  });
}
