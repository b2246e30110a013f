// Writes docs/configuration.md, the reference of every configuration key (`npm run docs:config`);
// with --check, only says whether the file is current. Types, defaults and limits come from the zod
// schema itself (its JSON Schema); each key's meaning from the doc comment above it in config.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { z } from 'zod';
import { configSchema } from '../src/kernel/config.ts';

const root = join(import.meta.dirname, '..');
const CONFIG_SOURCE = join(root, 'src', 'kernel', 'config.ts');
export const CONFIG_REFERENCE_FILE = join(root, 'docs', 'configuration.md');

type JsonSchema = {
  type?: string | string[]; properties?: Record<string, JsonSchema>; required?: string[]; items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean; oneOf?: JsonSchema[]; anyOf?: JsonSchema[]; enum?: unknown[];
  const?: unknown; default?: unknown; minimum?: number; maximum?: number; exclusiveMinimum?: number;
  minLength?: number; maxLength?: number; minItems?: number; maxItems?: number; pattern?: string; format?: string;
  propertyNames?: JsonSchema;
};
type Row = { key: string; type: string; default: string; required: boolean; meaning: string };

/**
 * Doc comments by the declaration that holds them and the path of property names inside it, a union
 * member's discriminator value standing in as a segment: `providerSchema.stripe.apiBase`.
 */
export function docComments(source: string): Map<string, string> {
  const file = ts.createSourceFile('config.ts', source, ts.ScriptTarget.ES2022, true);
  const comments = new Map<string, string>();
  const discriminator = (obj: ts.ObjectLiteralExpression): string | undefined => {
    for (const p of obj.properties) {
      if (!ts.isPropertyAssignment(p) || !ts.isIdentifier(p.name) || !['kind', 'type'].includes(p.name.text)) continue;
      const init = p.initializer;
      if (ts.isCallExpression(init) && init.expression.getText(file) === 'z.literal' && init.arguments[0] && ts.isStringLiteral(init.arguments[0])) {
        return init.arguments[0].text;
      }
    }
    return undefined;
  };
  const visit = (node: ts.Node, path: string[]) => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) {
      visit(node.initializer, [node.name.text]);
      return;
    }
    if (ts.isPropertyAssignment(node) && (ts.isIdentifier(node.name) || ts.isStringLiteral(node.name))) {
      const here = [...path, node.name.text];
      const doc = ts.getJSDocCommentsAndTags(node).map((d) => ts.getTextOfJSDocComment(d.comment) ?? '').join(' ').trim();
      if (doc) comments.set(here.join('.'), doc.replace(/\s+/g, ' '));
      ts.forEachChild(node.initializer, (c) => visit(c, here));
      return;
    }
    if (ts.isObjectLiteralExpression(node)) {
      const d = discriminator(node);
      ts.forEachChild(node, (c) => visit(c, d ? [...path, d] : path));
      return;
    }
    ts.forEachChild(node, (c) => visit(c, path));
  };
  visit(file, []);
  return comments;
}

/**
 * A key's comment: its own path in configSchema, else the longest tail of it that is the whole path of
 * a comment in one other declaration (`subscriptions[].target.nats.subject` is
 * `subscriptionTargetSchema.nats.subject`), when only one declaration has it.
 */
function meaningOf(comments: Map<string, string>, key: string): string {
  const segments = key.replace(/\[\]/g, '').split('.').filter((s) => s !== '<name>');
  const own = comments.get(`configSchema.${segments.join('.')}`);
  if (own) return own;
  for (let from = 1; from < segments.length; from++) {
    const tail = segments.slice(from).join('.');
    const found = [...comments].filter(([k]) => !k.startsWith('configSchema.') && k.slice(k.indexOf('.') + 1) === tail);
    if (found.length === 1) return found[0]![1];
  }
  return '';
}

function describeType(s: JsonSchema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  const alts = s.anyOf ?? s.oneOf;
  if (alts) {
    // A duration is a number of milliseconds or a string such as "30s" (durationSchema).
    if (alts.length === 2 && alts.some((a) => a.type === 'integer') && alts.some((a) => a.type === 'string' && a.maxLength === 40)) return 'duration';
    return alts.map(describeType).join(' \\| ');
  }
  const limits: string[] = [];
  const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : undefined);
  const max = s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER ? s.maximum : undefined;
  if (min !== undefined && max !== undefined) limits.push(`${min}–${max}`);
  else if (min !== undefined) limits.push(`≥ ${min}`);
  else if (max !== undefined) limits.push(`≤ ${max}`);
  if (s.minLength !== undefined && s.minLength > 1) limits.push(`≥ ${s.minLength} chars`);
  if (s.maxLength !== undefined) limits.push(`≤ ${s.maxLength} chars`);
  if (s.format) limits.push(s.format);
  if (s.pattern) limits.push(`\`${s.pattern.replace(/\|/g, '\\|')}\``);
  if (s.type === 'array') {
    const n = [s.minItems !== undefined ? `≥ ${s.minItems}` : '', s.maxItems !== undefined ? `≤ ${s.maxItems}` : ''].filter(Boolean).join(', ');
    return `array of ${s.items ? describeType(s.items) : 'any'}${n ? ` (${n})` : ''}`;
  }
  const type = Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any');
  return limits.length ? `${type} (${limits.join(', ')})` : type;
}

type ZodDef = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; defaultValue?: unknown; in?: z.ZodType;
  element?: z.ZodType; valueType?: z.ZodType; options?: z.ZodType[]; discriminator?: string; value?: unknown; values?: unknown[] };
const defOf = (t: z.ZodType) => (t as unknown as { _zod: { def: ZodDef } })._zod.def;

/**
 * Defaults read from the zod schema itself, keyed as the rows are: JSON Schema drops a default that
 * wraps a transform (every duration), so they are collected here.
 */
function zodDefaults(t: z.ZodType, key: string, out: Map<string, unknown>): Map<string, unknown> {
  const def = defOf(t);
  switch (def.type) {
    case 'default': out.set(key, def.defaultValue); zodDefaults(def.innerType!, key, out); break;
    case 'optional': case 'nullable': case 'readonly': zodDefaults(def.innerType!, key, out); break;
    case 'pipe': zodDefaults(def.in!, key, out); break;
    case 'object': for (const [k, v] of Object.entries(def.shape!)) zodDefaults(v, key ? `${key}.${k}` : k, out); break;
    case 'array': zodDefaults(def.element!, `${key}[]`, out); break;
    case 'record': zodDefaults(def.valueType!, `${key}.<name>`, out); break;
    case 'union':
      for (const o of def.options!) {
        const tag = def.discriminator && defOf(o).shape?.[def.discriminator];
        const v = tag ? (defOf(tag).values?.[0] ?? defOf(tag).value) : undefined;
        zodDefaults(o, v === undefined ? key : `${key}.${String(v)}`, out);
      }
      break;
    default: break;
  }
  return out;
}

function describeDefault(value: unknown): string {
  if (value === undefined) return '';
  const text = JSON.stringify(value);
  return text.length > 60 ? (typeof value === 'object' && !Array.isArray(value) ? 'its keys\' defaults' : 'see the source') : `\`${text}\``;
}

/** One row per key, depth first; union members (providers by kind, targets by type) as their own keys. */
type Context = { comments: Map<string, string>; defaults: Map<string, unknown> };
function rows(s: JsonSchema, key: string, required: boolean, ctx: Context, out: Row[]): void {
  const push = (type: string, req = required) => out.push({ key, type, default: describeDefault(ctx.defaults.get(key)), required: req, meaning: meaningOf(ctx.comments, key) });
  const members = s.oneOf ?? s.anyOf;
  if (members && members.every((m) => m.type === 'object' && m.properties)) {
    const tag = Object.keys(members[0]!.properties!).find((k) => members.every((m) => m.properties![k]?.const !== undefined));
    push(`object, one of: ${members.map((m) => `\`${tag}: ${JSON.stringify(m.properties![tag!]!.const)}\``).join(', ')}`);
    for (const m of members) {
      const value = String(m.properties![tag!]!.const);
      out.push({ key: `${key}.${value}`, type: `when \`${tag}\` is \`${JSON.stringify(value)}\``, default: '', required: false, meaning: '' });
      for (const [k, v] of Object.entries(m.properties!)) {
        if (k !== tag) rows(v, `${key}.${value}.${k}`, (m.required ?? []).includes(k), ctx, out);
      }
    }
    return;
  }
  if (s.type === 'object' && s.properties) {
    if (key && !key.endsWith('[]')) push('object');
    for (const [k, v] of Object.entries(s.properties)) rows(v, key ? `${key}.${k}` : k, (s.required ?? []).includes(k), ctx, out);
    return;
  }
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object') {
    push(`object: name → ${s.propertyNames?.pattern ? `(names \`${s.propertyNames.pattern}\`)` : 'value'}`);
    rows(s.additionalProperties, `${key}.<name>`, false, ctx, out);
    return;
  }
  if (s.type === 'array' && s.items?.type === 'object' && s.items.properties) {
    push(`array of objects${s.maxItems !== undefined ? ` (≤ ${s.maxItems})` : ''}`);
    rows(s.items, `${key}[]`, false, ctx, out);
    return;
  }
  push(describeType(s));
}

export function renderConfigReference(): string {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const comments = docComments(readFileSync(CONFIG_SOURCE, 'utf8'));
  const out: Row[] = [];
  rows(schema, '', true, { comments, defaults: zodDefaults(configSchema, '', new Map()) }, out);
  const cell = (t: string) => t.replace(/\n/g, ' ');
  return [
    '# Configuration reference',
    '',
    '<!-- Generated by `npm run docs:config` from src/kernel/config.ts; a test fails when it is out of date. -->',
    '',
    'seigo reads a JSON file (`SEIGO_CONFIG`, default `./seigo.config.json`) and validates it once at start;',
    'an error names every bad key. Any string may be `${NAME}` to take it from the environment (secrets stay out',
    'of the file). `SEIGO_PORT`, `SEIGO_HOST`, `SEIGO_DATA_DIR`, `SEIGO_LOG_LEVEL` and `DATABASE_URL` override',
    'the keys of the same meaning. Durations are milliseconds or strings such as `"30s"`, `"5min"`, `"2h"`.',
    'A key marked *required* must be given when the object holding it is.',
    '',
    '| Key | Type | Default | Meaning |',
    '| --- | --- | --- | --- |',
    ...out.map((r) => `| \`${r.key}\`${r.required && r.default === '' ? ' *required*' : ''} | ${cell(r.type)} | ${r.default} | ${cell(r.meaning)} |`),
    '',
  ].join('\n');
}

if (process.argv[1]?.endsWith('config-reference.ts')) {
  const text = renderConfigReference();
  if (process.argv.includes('--check')) {
    let current = '';
    try { current = readFileSync(CONFIG_REFERENCE_FILE, 'utf8'); } catch { /* missing: out of date */ }
    if (current !== text) {
      console.error('docs/configuration.md is out of date: run npm run docs:config');
      process.exit(1);
    }
  } else {
    writeFileSync(CONFIG_REFERENCE_FILE, text);
    console.log(`wrote ${CONFIG_REFERENCE_FILE}`);
  }
}
