// The ticket state machine as data: issued → redeemed | cancelled | refunded, all final. A later
// offline upload may move a redemption to an earlier gate scan, which is not a change of status.
export type TicketStatus = 'issued' | 'redeemed' | 'cancelled' | 'refunded';
export const TICKET_STATUSES: readonly TicketStatus[] = ['issued', 'redeemed', 'cancelled', 'refunded'];

export const TICKET_TRANSITIONS: Readonly<Record<TicketStatus, readonly TicketStatus[]>> = {
  issued: ['redeemed', 'cancelled', 'refunded'],
  redeemed: [],
  cancelled: [],
  refunded: [],
};

export const canTransition = (from: TicketStatus, to: TicketStatus): boolean => TICKET_TRANSITIONS[from].includes(to);

/** What the ledger worker posts for a transition into `to`. */
export const POSTING_FOR: Readonly<Record<TicketStatus, 'sold' | 'redeemed' | 'refunded'>> = {
  issued: 'sold', redeemed: 'redeemed', cancelled: 'refunded', refunded: 'refunded',
};
