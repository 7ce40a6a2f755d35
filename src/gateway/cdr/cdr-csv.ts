import { Cdr } from './cdr';
import { LegQuality } from './quality';

/** The CSV export's columns, in order (docs/cdr.md): one row per CDR. */
const QUALITY_FIELDS = ['packetsSent', 'packetsReceived', 'packetsLost', 'packetsLostByPeer', 'jitterMs', 'rttMs', 'lossPercent', 'rFactor', 'mos'] as const;

type Column = [name: string, value: (c: Cdr) => unknown];

const iso = (ms: number | undefined): string => (ms === undefined ? '' : new Date(ms).toISOString());

const quality = (side: 'caller' | 'callee'): Column[] =>
  QUALITY_FIELDS.map((f): Column => [`${side}_${f}`, (c) => (c.quality[side] as LegQuality | undefined)?.[f]]);

export const CSV_COLUMNS: readonly Column[] = [
  ['call_id', (c) => c.callId],
  ['caller_sip_call_id', (c) => c.sipCallIds.caller],
  ['callee_sip_call_id', (c) => c.sipCallIds.callee],
  ['gateway_id', (c) => c.gatewayId],
  ['caller', (c) => c.caller.party],
  ['caller_uri', (c) => c.caller.uri],
  ['caller_kind', (c) => c.caller.kind],
  ['callee', (c) => c.callee.party],
  ['callee_uri', (c) => c.callee.uri],
  ['callee_kind', (c) => c.callee.kind],
  ['created_at', (c) => iso(c.createdAt)],
  ['ringing_at', (c) => iso(c.ringingAt)],
  ['answered_at', (c) => iso(c.answeredAt)],
  ['ended_at', (c) => iso(c.endedAt)],
  ['ring_ms', (c) => c.ringMs],
  ['talk_ms', (c) => c.talkMs],
  ['duration_ms', (c) => c.durationMs],
  ['answered', (c) => c.answered],
  ['reason', (c) => c.reason],
  ['ended_by', (c) => c.endedBy],
  ['codec', (c) => c.codec],
  ['transfers', (c) => c.transfers.length],
  ['recording_url', (c) => c.recording?.url],
  ['tags', (c) => (c.tags ? JSON.stringify(c.tags) : '')],
  ...quality('caller'),
  ...quality('callee'),
];

/**
 * One CSV cell (RFC 4180): quoted when it holds a comma, quote, CR or LF, quotes doubled. A text
 * starting with = + - @ (or a tab / CR) is prefixed with ' so a spreadsheet never runs it as a
 * formula (CSV injection); numbers are written as they are.
 */
export function csvCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  let s = typeof value === 'string' ? value : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.map(([name]) => name).join(',')}\r\n`;
}

export function csvRow(cdr: Cdr): string {
  return `${CSV_COLUMNS.map(([, value]) => csvCell(value(cdr))).join(',')}\r\n`;
}
