// Points: a consumer of card.* messages that knows nothing of payments' internals;
// ledger postings in asset 'PTS', lots that expire, spending oldest first.
export { pointsConsumer, applyCardMessage, purchaseKeyOf, type PointsDeps } from './award.ts';
export { ruleFor, pointsFor, summarize, targetPoints, type PointsConfig, type AppliedRule } from './rules.ts';
export { spendPoints, expireLots, pointsBalance, pointsHistory, type PointsBalance, type PointsHistoryEntry, type SpendError } from './spend.ts';
export { POINTS_ASSET } from './accounts.ts';
