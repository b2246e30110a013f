// OpenTelemetry traces: the SDK starts only when the standard OTEL_* variables ask for it; otherwise
// @opentelemetry/api hands out no-op spans that cost next to nothing. A span's context is written into
// rows as a W3C `traceparent` (inbox, outbox_messages, operations), so work a worker picks up later
// joins the trace of the notification that caused it.
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';

export const tracer = () => trace.getTracer('seigo');

/** Do the environment's OTEL_* variables turn tracing on? (OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn it off.) */
export function tracingEnabled(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return false;
  const exporters = env.OTEL_TRACES_EXPORTER?.split(',').map((x) => x.trim()).filter(Boolean);
  if (exporters?.length) return !exporters.every((x) => x === 'none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export interface Tracing { shutdown(): Promise<void> }

/**
 * Starts the Node SDK (exporters, sampler, resource from OTEL_*) when enabled, or always with the given
 * span processors (tests). Loaded lazily: a process without tracing never imports the SDK.
 */
export async function startTracing(env: NodeJS.ProcessEnv = process.env, spanProcessors?: SpanProcessor[]): Promise<Tracing | null> {
  if (!spanProcessors && !tracingEnabled(env)) return null;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({
    instrumentations: [],
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: 'seigo' }),
    ...(spanProcessors ? { spanProcessors } : {}),
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The active span's context as a W3C traceparent, or null outside a (recording or sampled-out) real span. */
export function currentTraceparent(ctx: Context = context.active()): string | null {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !trace.isSpanContextValid(sc)) return null;
  return `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags.toString(16).padStart(2, '0')}`;
}

/** A context whose parent is the span a stored traceparent names (the root context for none or garbage). */
export function contextOf(traceparent: string | null | undefined): Context {
  const m = traceparent ? TRACEPARENT.exec(traceparent) : null;
  if (!m) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16), isRemote: true });
}

/**
 * Runs `fn` in a new span (child of `parent`, default the active context), ending it with an error status
 * when `fn` throws. The span is passed in for attributes set on the way.
 */
export async function inSpan<T>(name: string, opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>): Promise<T> {
  const parent = opts.parent ?? context.active();
  return tracer().startActiveSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span.end();
    }
  });
}

export { SpanKind, SpanStatusCode };
