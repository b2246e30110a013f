export { InboxWriter, type InboxRowInput, type InboxWriteResult } from './inbox-writer.ts';
export { EventHandlers, type EventHandler, type EventHandlerContext, type InboxEventMeta } from './handlers.ts';
export { InboxProcessor, replayInbox, replayInboxSince } from './process-inbox.ts';
