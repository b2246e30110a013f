export { publish, publishMany, type OutboxMessage, type PublishOptions } from './publish.ts';
export { Consumers, type Consumer, type ConsumerContext, type DeliveredMessage } from './consumers.ts';
export * from './subscriptions.ts';
export { HandlerDeliveryProcessor, HttpDeliveryProcessor, webhookBody, type DeliveryOutcome } from './deliver.ts';
export { redrive, backfill, type RedriveFilter } from './redrive.ts';
export { NatsDeliveryProcessor, natsPublishOf } from './deliver-nats.ts';
export { NatsLink, natsCause, type NatsConfig, type JetStreamPublish, type PublishOutcome } from './nats-link.ts';
export * from './subscription-admin.ts';
