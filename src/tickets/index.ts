// The tickets module's surface: issuing with signed QR tokens, exactly-once online
// redemption, offline gate manifests and uploads, and the worker that posts to the ledger and opens cases.
export { TICKET_STATUSES, TICKET_TRANSITIONS, canTransition, type TicketStatus } from './state.ts';
export { TicketKeys, verifyQr, keysFromManifest, signQr, kidFor, QR_CLOCK_SKEW_S, type QrClaims, type QrError, type VerificationKey } from './qr.ts';
export {
  issueTickets, getTicket, closeTicket, ticketJson, dayBounds, facilityToday, TICKET_UTC_OFFSET, MAX_QUANTITY, MAX_DAYS_AHEAD,
  type Ticket, type IssueError, type CloseError,
} from './tickets.ts';
export { Redeemer, redeemOnline, ticketIdOf, type OnlineScan, type RedeemerOptions } from './redeemer.ts';
export { redeem, scanOf, type RedeemInput, type RedeemError, type Redeemed, type Scanned } from './redeem.ts';
export { manifest, syncGate, verifyBatch, type VerifiedBatch, GATE_FUTURE_SKEW_MS, type Manifest, type Scan, type SyncResult, type SyncError, type ScanOutcome } from './sync.ts';
export { settleTickets, postTicketEvents, openConflictCases, ticketEntries } from './settle.ts';
