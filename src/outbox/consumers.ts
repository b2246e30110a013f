// In-process consumers: code that a subscription with target {type: "handler"} delivers to.
// A consumer's writes and the delivery's completion commit in one transaction: exactly once.
import type { Tx } from '../kernel/db.ts';
import type { Logger } from '../kernel/logger.ts';

export interface DeliveredMessage {
  deliveryId: string;
  messageId: string;
  topic: string;
  key: string | null;
  attributes: Record<string, unknown>;
  payload: unknown;
  publishedAt: Date;
  attempt: number;
}

export interface ConsumerContext { tx: Tx; log: Logger }

export type Consumer =
  | { handle(ctx: ConsumerContext, message: DeliveredMessage): Promise<void> }
  | { handleBatch(ctx: ConsumerContext, messages: DeliveredMessage[]): Promise<void> };

export class Consumers {
  private readonly byName = new Map<string, Consumer>();
  register(name: string, consumer: Consumer): this {
    this.byName.set(name, consumer);
    return this;
  }
  get(name: string): Consumer | undefined {
    return this.byName.get(name);
  }
  names(): string[] {
    return [...this.byName.keys()];
  }
}
