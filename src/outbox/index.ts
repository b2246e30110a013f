export { publish, publishMany, type OutboxMessage, type PublishOptions } from './publish.ts';
export { Consumers, type Consumer, type ConsumerContext, type DeliveredMessage } from './consumers.ts';
export * from './subscriptions.ts';
export { HandlerDeliveryProcessor, HttpDeliveryProcessor, webhookBody, type DeliveryOutcome } from './deliver.ts';
export { redrive, backfill, type RedriveFilter } from './redrive.ts';
