// The ledger's public surface (C1–C4): balanced immutable postings, holds, limits that count
// holds, escrow for unrefusable deposits over the limit, suspense for restricted users.
export * from './types.ts';
export { ensureAccount, ensureAccounts, findAccount, setBalanceLimit, clearBalanceLimit, restrictOwner, unrestrictOwner, type AccountSpec } from './accounts.ts';
export { post, reverse, InvalidPostingError } from './post.ts';
export { placeHold, captureHold, releaseHold, expireHolds, getHold, HOLD_STATUSES, HOLD_TRANSITIONS, canTransition, type PlaceHoldInput } from './holds.ts';
export { creditDeposit, creditDeposits, DepositCreditor, type CreditDepositResult, type CreditDepositInput, type CreditDepositOutcome, type CreditDepositError, type DepositMode } from './credit-deposit.ts';
export { getAccount, getBalance, getTransaction, getUserBalances, listAccountTransactions, entriesOf, type AccountTransaction, type UserBalances } from './read.ts';
export { lockBalances, headroom } from './balances.ts';
