export { HealthRollup, LATENCY_BOUNDS_MS, BUCKET_MS, latencyBucket, quantileMs, type HealthSource } from './rollup.ts';
export { reportBreakers, BREAKER_STALE_MS } from './breakers.ts';
export { healthReport, type HealthReport, type TrafficFigures } from './report.ts';
