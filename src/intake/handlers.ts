// Handlers for canonical events, registered by event type ('*' for every type). They run in the
// inbox worker's transaction, together with the domain change and any outbox messages.
import type { Tx } from '../kernel/db.ts';
import type { Logger } from '../kernel/logger.ts';
import type { CanonicalEvent } from '../providers/types.ts';

export interface InboxEventMeta {
  inboxId: string;
  provider: string;
  eventId: string;
  source: 'webhook' | 'reconciliation' | 'manual';
  receivedAt: Date;
}

export interface EventHandlerContext {
  tx: Tx;
  log: Logger;
}

export type EventHandler = (ctx: EventHandlerContext, event: CanonicalEvent, meta: InboxEventMeta) => Promise<void>;

export class EventHandlers {
  private readonly byType = new Map<string, EventHandler[]>();

  on(type: string, handler: EventHandler): this {
    const list = this.byType.get(type) ?? [];
    list.push(handler);
    this.byType.set(type, list);
    return this;
  }

  for(type: string): EventHandler[] {
    return [...(this.byType.get(type) ?? []), ...(this.byType.get('*') ?? [])];
  }
}
