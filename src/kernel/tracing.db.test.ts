// Traces across the whole path, with the Node SDK exporting to memory: a webhook's intake span, its
// processing, the operation its handler recorded (called later, by another task) and the HTTP delivery
// of the message it published are one trace, and the receiver gets the delivery span's traceparent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { BillingSimulator, billingAdapter } from '../providers/billing/index.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { startReceiver, type Receiver } from '../../test/helpers/receiver.ts';
import { sendWebhook } from '../../test/helpers/webhooks.ts';
import { startTracing, tracingEnabled, type Tracing } from './tracing.ts';

const exporter = new InMemorySpanExporter();
const sim = new BillingSimulator({ apiKey: 'bk_test_trace', seed: 7 });
const agent = new Agent({ keepAliveTimeout: 1_000 });
let tracing: Tracing | null;
let crm: Receiver;
let t: TestEngine;
let opIds: string[] = [];

beforeAll(async () => {
  tracing = await startTracing({}, [new SimpleSpanProcessor(exporter)]);
  const { url } = await sim.start();
  crm = await startReceiver();
  t = await startTestEngine({
    worker: true,
    providers: [billingAdapter({ name: 'billing', apiBase: url, apiKey: 'bk_test_trace', dispatcher: agent })],
    config: { subscriptions: [{ name: 'crm', topic: 'member.*', target: { type: 'http', url: crm.url } }], reconcile: { schedule: false } },
  });
  // A handler that, like the deposit flows, records an outbound call while processing the notification.
  t.engine.handlers.on('member.joined', async ({ tx }, event) => {
    const { operation } = await t.engine.operations.record(tx, {
      provider: 'billing', kind: 'billing.start', idempotencyKey: `join-${event.entityId ?? 'x'}`,
      request: { member_id: String(event.entityId), product_id: 'gold', expires_at: new Date(Date.now() + 30 * 86_400_000).toISOString() },
    });
    opIds.push(operation.id);
  });
});
afterAll(async () => {
  await t.close();
  await tracing?.shutdown();
  await crm.close();
  await sim.stop();
  await agent.close();
});

const spans = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

describe('OpenTelemetry traces', () => {
  it('are off unless the OTEL_* variables ask for them', () => {
    expect(tracingEnabled({})).toBe(false);
    expect(tracingEnabled({ OTEL_SERVICE_NAME: 'seigo' })).toBe(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(true);
    expect(tracingEnabled({ OTEL_TRACES_EXPORTER: 'console' })).toBe(true);
    expect(tracingEnabled({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(false);
    expect(tracingEnabled({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' })).toBe(false);
  });

  it('one trace from the webhook to the operation it caused and to each delivery, with traceparent sent', async () => {
    opIds = [];
    const sent = await sendWebhook(t.url, { id: 'evt_trace_1', type: 'member.joined', data: { id: 'm-trace-1' } });
    expect(sent.status).toBe(200);
    await eventually(async () => crm.requests.length >= 1 && opIds.length === 1);
    // The operation is called later, by another task: its span still joins the notification's trace.
    const op = await t.engine.operations.execute(opIds[0]!);
    expect(op.status).toBe('succeeded');
    await eventually(async () => spans('delivery.http').length >= 1 && spans('operation.call').length >= 1);

    const [intake] = spans('webhook.intake');
    const [processing] = spans('inbox.process');
    const [call] = spans('operation.call');
    const [delivery] = spans('delivery.http');
    const traceId = intake!.spanContext().traceId;
    expect(intake!.attributes['seigo.provider']).toBe('acme');
    expect(processing!.spanContext().traceId).toBe(traceId);
    expect(parentOf(processing!)).toBe(intake!.spanContext().spanId);
    expect(call!.spanContext().traceId).toBe(traceId);
    expect(parentOf(call!)).toBe(processing!.spanContext().spanId);
    expect(call!.attributes).toMatchObject({ 'seigo.provider': 'billing', 'seigo.operation_kind': 'billing.start', 'seigo.outcome': 'succeeded' });
    expect(delivery!.spanContext().traceId).toBe(traceId);
    expect(parentOf(delivery!)).toBe(processing!.spanContext().spanId);
    expect(delivery!.attributes).toMatchObject({ 'seigo.subscription': 'crm', 'seigo.topic': 'member.joined', 'seigo.outcome': 'delivered' });

    // The receiver got the delivery span's context.
    const d = delivery!.spanContext();
    expect(crm.requests[0]!.headers.traceparent).toBe(`00-${d.traceId}-${d.spanId}-01`);
    // And the rows carry it for whoever picks them up next.
    const row = await t.engine.db.pool.query<{ traceparent: string }>(`SELECT traceparent FROM outbox_messages WHERE topic = 'member.joined'`);
    expect(row.rows[0]!.traceparent).toBe(`00-${traceId}-${processing!.spanContext().spanId}-01`);
  });
});
